// An open utterance (`final: false`) starts speaking as soon as a first sentence is complete,
// and text without a sentence end is spoken after a quiet period (issue 15, item 11): a client
// that waits for audio before sending more text must not wait forever.
import { describe, expect, it } from 'vitest';
import { createActor, SimulatedClock } from 'xstate';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine } from '../../machines/speaker.machine.js';
import { speakerOf } from '../../machines/sessionPhase.js';
import type { ConnectionEvent, ServerMessage } from '../../machines/types.js';
import { createSynthesisLogic } from '../../src/engine/synthesisActor.js';
import { voiceIdsOf } from '../../src/engine/sessionSettings.js';
import type { PcmBlock, SynthesisRequest, TtsProvider } from '../../src/providers/types.js';
import { createHarness, testLimits, type Harness } from '../support/machineHarness.js';
import { settle } from '../support/settle.js';

const quiet = testLimits.textQuietMs;

describe('the session machine while an open utterance waits for text', () => {
  function waiting(): Harness {
    const h = createHarness();
    h.send({ type: 'START', sampleRate: 24_000 });
    h.send({ type: 'SPEAK', request: { id: 'a', text: 'Hello there', final: false, mode: 'interrupt' } });
    h.liveUpstream()!.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    return h;
  }
  const commands = (h: Harness) => h.liveUpstream()!.commands;

  it('asks the upstream to speak its held text once no text came for textQuietMs, once', () => {
    const h = waiting();
    h.clock.increment(quiet - 1);
    expect(commands(h)).toEqual([]);
    h.clock.increment(1);
    expect(commands(h)).toEqual(['FLUSH']);
    h.clock.increment(quiet * 2);
    expect(commands(h)).toEqual(['FLUSH']);
  });

  it('starts the quiet period over with each append, and the text-idle clock keeps counting from the last text', () => {
    const h = waiting();
    h.clock.increment(quiet - 1);
    h.send({ type: 'SPEAK', request: { id: 'a', text: ' and', final: false, mode: 'interrupt' } });
    h.clock.increment(quiet - 1);
    expect(commands(h)).toEqual(['TEXT']);
    h.clock.increment(1);
    expect(commands(h)).toEqual(['TEXT', 'FLUSH']);
    // The flush is no text: the open utterance still times out textIdle after the last append.
    h.clock.increment(testLimits.textIdleTimeoutMs - quiet - 1);
    expect(h.messages().filter((m) => m.type === 'speak.end')).toEqual([]);
    h.clock.increment(1);
    expect(h.messages().at(-1)).toMatchObject({ type: 'speak.end', id: 'a', reason: 'timeout', error: { code: 'text_idle_timeout' } });
  });

  it('also while streaming, and the quiet timer goes with the state: audio before it runs out cancels it', () => {
    const h = waiting();
    const up = h.liveUpstream()!;
    up.write(new Int16Array(480).fill(1)); // leaves connecting.awaitingText before the quiet period ended
    h.clock.increment(quiet * 2);
    expect(up.commands).toEqual([]);
    up.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    expect(h.speakerIn({ active: { live: { streaming: 'awaitingText' } } })).toBe(true);
    h.clock.increment(quiet);
    expect(up.commands).toEqual(['FLUSH']);
    h.send({ type: 'STOP' });
    up.sendBack({ type: 'UPSTREAM_RELEASED', stream: 1 });
    expect(h.counts()).toMatchObject({ liveUpstreams: 0, pendingTimers: 0 });
  });
});

/** A provider that records each piece it is asked for and answers with a short block of audio. */
class RecordingProvider implements TtsProvider {
  readonly name = 'recording';
  readonly voices = [{ id: 'en-us', language: 'en', provider: 'recording' }];
  readonly maxPieceChars = 300;
  readonly pieces: string[] = [];

  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    this.pieces.push(request.text);
    yield { samples: new Int16Array(240).fill(this.pieces.length), sampleRate: 24_000 };
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  isReady(): boolean {
    return true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The session machines with the real synthesis job (splitter, pieces, chunker) over the recording provider. */
function withRealJob() {
  const provider = new RecordingProvider();
  const clock = new SimulatedClock();
  const messages: ServerMessage[] = [];
  let audioFrames = 0;
  const speaker = speakerMachine.provide({
    actions: {
      sendMessage: (_, message) => messages.push(message),
      sendAudio: () => audioFrames++,
    },
    actors: {
      upstream: createSynthesisLogic({
        resolveVoice: (id) => (id === 'en-us' ? { provider, providerVoice: 'en-us' } : undefined),
        chunkMs: 40,
      }),
    },
  });
  const machine = connectionMachine.provide({
    actions: { sendMessage: (_, message) => messages.push(message) },
    actors: { speaker },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      sessionId: 'job',
      voices: provider.voices,
      voiceIds: voiceIdsOf(provider.voices),
      defaultVoice: 'en-us',
      sampleRates: [24_000],
      limits: testLimits,
      now: () => clock.now(),
    },
  });
  actor.start();
  const send = (event: ConnectionEvent) => actor.send(event);
  send({ type: 'START', sampleRate: 24_000 });
  const speak = (text: string, final: boolean) => send({ type: 'SPEAK', request: { id: 'u', text, final, mode: 'interrupt' } });
  const awaitingText = () => {
    const s = speakerOf(actor.getSnapshot())?.getSnapshot();
    if (s?.status !== 'active') return false;
    return s.matches({ active: { live: { connecting: 'awaitingText' } } }) || s.matches({ active: { live: { streaming: 'awaitingText' } } });
  };
  return { provider, clock, messages, actor, speak, awaitingText, audioFrames: () => audioFrames };
}

describe('an open utterance with the real synthesis job', () => {
  it('speaks a complete first sentence with no more text, then held text after the quiet period, everything once and in order', async () => {
    const s = withRealJob();
    s.speak('The first sentence is complete. ', false);
    await settle(() => s.audioFrames() > 0, 2_000, 'audio of the complete first sentence, with no more text');
    expect(s.provider.pieces).toEqual(['The first sentence is complete.']);

    s.speak('The second one has no end yet', false);
    await settle(s.awaitingText, 2_000, 'the wait for text');
    await new Promise((r) => setTimeout(r, 50));
    expect(s.provider.pieces).toHaveLength(1); // held for its sentence's end
    const before = s.audioFrames();
    s.clock.increment(quiet);
    await settle(() => s.audioFrames() > before, 2_000, 'audio of the held text after the quiet period');

    s.speak(' and this closes it.', true);
    await settle(() => s.messages.some((m) => m.type === 'speak.end'), 2_000, 'the end');
    expect(s.messages.filter((m) => m.type === 'speak.end')).toMatchObject([{ id: 'u', reason: 'completed' }]);
    expect(s.provider.pieces).toEqual(['The first sentence is complete.', 'The second one has no end yet', 'and this closes it.']);
    s.actor.stop();
  });

  it('speaks text without a terminator once the quiet period passed, not before', async () => {
    const s = withRealJob();
    s.speak('Hello there', false);
    await settle(s.awaitingText, 2_000, 'the wait for text');
    s.clock.increment(quiet - 1);
    await new Promise((r) => setTimeout(r, 50));
    expect([s.provider.pieces, s.audioFrames()]).toEqual([[], 0]);
    s.clock.increment(1);
    await settle(() => s.audioFrames() > 0, 2_000, 'audio after the quiet period');
    expect(s.provider.pieces).toEqual(['Hello there']);
    s.speak('', true);
    await settle(() => s.messages.some((m) => m.type === 'speak.end'), 2_000, 'the end');
    expect(s.messages.filter((m) => m.type === 'speak.end')).toMatchObject([{ id: 'u', reason: 'completed' }]);
    expect(s.provider.pieces).toEqual(['Hello there']);
    s.actor.stop();
  });

  it('a whole utterance in one final frame is spoken with no quiet wait, and no piece ends at an abbreviation', async () => {
    const s = withRealJob();
    s.speak('Dr. Smith is here with us today. He came from the U.S. yesterday!', true);
    await settle(() => s.messages.some((m) => m.type === 'speak.end'), 2_000, 'the end');
    expect(s.provider.pieces).toEqual(['Dr. Smith is here with us today.', 'He came from the U.S. yesterday!']);
    s.actor.stop();
  });
});
