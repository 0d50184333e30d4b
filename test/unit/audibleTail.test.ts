// The audible tail: after a `completed` end the client still plays what it was sent, so the
// listener keeps hearing the assistant as audible (echo guard, barge-in threshold) for the sent
// duration since the first audio, at most `audibleTailMaxMs`, or until a playback report says the
// stream played to its end. Other ends (STOP, barge-in, a new interrupting utterance) end it at
// once. The pure charts on XState's simulated clock; the listener host's inspect hook shows what
// the listener is told.
import { describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import type { ListenGrant } from '../../machines/types.js';
import { defaultListenLimits } from '../../machines/types.js';
import { createHarness, testLimits } from '../support/machineHarness.js';
import { levelVad, pcmMicInput, ScriptedRecognizer } from '../support/listeningStandIns.js';

const grant: ListenGrant = { granted: true, format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', interruptions: true, recognizer: 'scripted' };
const rate = 24_000;

function listening(limits: { audibleTailMaxMs?: number } = {}) {
  const recognizer = new ScriptedRecognizer();
  /** What the listener was told, in order. */
  const told: boolean[] = [];
  const h = createHarness(limits, {
    listen: {
      recognizers: new Map([[recognizer.name, recognizer]]),
      createVad: () => levelVad(),
      createMicInput: () => pcmMicInput(),
      limits: defaultListenLimits,
      inspect: () => (inspection: InspectionEvent) => {
        const event = inspection.type === '@xstate.event' ? (inspection.event as { type: string; audible?: boolean }) : null;
        const root = (inspection.actorRef as { _parent?: unknown })._parent === undefined;
        if (root && event?.type === 'ASSISTANT_AUDIBLE') told.push(event.audible!);
      },
    },
  });
  h.send({ type: 'START', sampleRate: rate, listen: grant });
  /** Speak `id` and send `ms` of its audio now (its first audio makes it audible). */
  const speak = (id: string, ms: number, mode: 'interrupt' | 'enqueue' = 'interrupt') => {
    h.send({ type: 'SPEAK', request: { id, text: 'words', mode, final: true } });
    const upstream = h.liveUpstream()!;
    upstream.write(new Int16Array((ms * rate) / 1000));
    return upstream;
  };
  const complete = (stream: number) => h.liveUpstream()!.sendBack({ type: 'UPSTREAM_DONE', stream });
  const inTail = () => h.actor.getSnapshot().matches({ open: { hearing: { listening: 'tail' } } });
  return { h, told, speak, complete, inTail };
}

describe('audible tail after a completed utterance', () => {
  it('stays audible for the sent duration since the first audio, then the listener hears it is silent', () => {
    const s = listening();
    s.speak('u1', 1_000);
    expect(s.told).toEqual([true]);
    s.h.clock.increment(200); // 1 s of audio went out in 200 ms: 800 ms still play
    s.complete(1);
    expect(s.h.ended.map((e) => e.reason)).toEqual(['completed']);
    expect(s.inTail()).toBe(true);
    expect(s.told).toEqual([true]);
    s.h.clock.increment(799);
    expect(s.told).toEqual([true]);
    s.h.clock.increment(1);
    expect(s.told).toEqual([true, false]);
    expect(s.inTail()).toBe(false);
  });

  it('a playback report that the stream played to its end ends the tail at once; other reports do not', () => {
    const s = listening();
    s.speak('u1', 1_000);
    s.complete(1);
    s.h.send({ type: 'PLAYBACK', stream: 1, playedMs: 999 });
    s.h.send({ type: 'PLAYBACK', stream: 7, playedMs: 5_000 });
    expect(s.told).toEqual([true]);
    s.h.send({ type: 'PLAYBACK', stream: 1, playedMs: 1_000 });
    expect(s.told).toEqual([true, false]);
    // Its timer went with the state: nothing more is told when it would have fired.
    s.h.clock.increment(2_000);
    expect(s.told).toEqual([true, false]);
  });

  it('never longer than audibleTailMaxMs, however much audio was sent ahead', () => {
    const s = listening({ audibleTailMaxMs: 3_000 });
    s.speak('u1', 20_000);
    s.complete(1);
    s.h.clock.increment(2_999);
    expect(s.told).toEqual([true]);
    s.h.clock.increment(1);
    expect(s.told).toEqual([true, false]);
    expect(testLimits.audibleTailMaxMs).toBe(3_000);
  });

  it('audio already played out: no tail', () => {
    const s = listening();
    s.speak('u1', 500);
    s.h.clock.increment(600);
    s.complete(1);
    expect(s.told).toEqual([true, false]);
    expect(s.inTail()).toBe(false);
  });

  it('STOP and an interrupting utterance end audibility at once (the client stops playing); the next utterance is audible again', () => {
    const s = listening();
    s.speak('u1', 1_000);
    s.h.send({ type: 'STOP' });
    expect(s.told).toEqual([true, false]);
    s.h.liveUpstream()?.sendBack({ type: 'UPSTREAM_RELEASED', stream: 1 });
    s.speak('u2', 1_000);
    expect(s.told).toEqual([true, false, true]);
  });

  it('a new utterance during the tail is audible on its own first audio; its end decides', () => {
    const s = listening();
    s.speak('u1', 1_000);
    s.h.clock.increment(500);
    s.complete(1); // 500 ms of tail
    expect(s.inTail()).toBe(true);
    s.h.liveUpstream()?.sendBack({ type: 'UPSTREAM_RELEASED', stream: 1 });
    s.speak('u2', 200, 'enqueue');
    expect(s.told).toEqual([true, true]);
    s.h.clock.increment(700); // past u1's tail (and within u2's chunk gap)
    expect(s.told).toEqual([true, true]);
    s.h.send({ type: 'STOP' });
    expect(s.told).toEqual([true, true, false]);
  });

  it('the session ending during the tail leaves no timer behind', () => {
    const s = listening();
    s.speak('u1', 1_000);
    s.complete(1);
    expect(s.inTail()).toBe(true);
    s.h.send({ type: 'CLIENT_GONE' });
    expect(s.h.actor.getSnapshot().status).toBe('done');
    expect(s.h.counts().pendingTimers).toBe(0);
  });
});
