// The listener host with a VAD that decides later (as Silero does: onnxruntime infers
// asynchronously): the listener must see what a synchronous VAD shows it, on the same media
// positions, however late the decisions come back in wall time; the backlog is bounded
// (audio_overrun) and a session's end drops pending inference once.
import { describe, expect, it } from 'vitest';
import type { ListenGrant, ServerMessage } from '../../machines/types.js';
import { defaultListenLimits } from '../../machines/types.js';
import type { VoiceActivityDetector } from '../../src/listening/types.js';
import { createHarness } from '../support/machineHarness.js';
import { bytesOf, laterVad, levelVad, pcmMicInput, ScriptedRecognizer, tone } from '../support/listeningStandIns.js';

const grant: ListenGrant = { granted: true, format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', interruptions: true, recognizer: 'scripted' };

const flush = async () => {
  for (let i = 0; i < 6; i++) await Promise.resolve();
};

function session(createVad: () => VoiceActivityDetector, vadBacklogMs?: number) {
  const recognizer = new ScriptedRecognizer();
  const counts = { listeners: 0, backlogMs: 0 };
  const h = createHarness(
    {},
    {
      listen: {
        recognizers: new Map([[recognizer.name, recognizer]]),
        createVad,
        createMicInput: () => pcmMicInput(),
        limits: defaultListenLimits,
        ...(vadBacklogMs !== undefined ? { vadBacklogMs } : {}),
        hooks: { listenerStarted: () => counts.listeners++, listenerStopped: () => counts.listeners--, vadBacklog: (ms) => (counts.backlogMs += ms) },
      },
    },
  );
  h.send({ type: 'START', sampleRate: 24_000, listen: grant });
  const mic = (pcm: Int16Array) => {
    for (let i = 0; i < pcm.length; i += 320) h.send({ type: 'MIC_AUDIO', payload: new Uint8Array(bytesOf(pcm.subarray(i, i + 320))) });
  };
  return { h, recognizer, counts, mic };
}

/** What the client hears of listening (and the speak.ends), with media positions. */
const heard = (messages: ServerMessage[]) =>
  messages.filter((m) => m.type.startsWith('input.') || m.type === 'transcript' || m.type === 'speak.end' || m.type === 'error');

/**
 * Speech endpointed (t1), then speech ended by a COMMIT while its audio may still wait for
 * decisions (t2). Between the parts the recognizer's final comes back (a later microtask).
 */
const parts = [
  (mic: (pcm: Int16Array) => void) => {
    mic(new Int16Array(200 * 16));
    mic(tone(600));
    mic(new Int16Array(900 * 16));
  },
  (mic: (pcm: Int16Array) => void, send: (e: { type: 'COMMIT' }) => void) => {
    mic(tone(400));
    send({ type: 'COMMIT' }); // push to talk: t2 ends where its 400 ms of speech end
    mic(new Int16Array(300 * 16));
  },
];

describe('listener host with a VAD that decides later', () => {
  it('the listener sees the same turns at the same media positions as with a synchronous VAD', async () => {
    const sync = session(() => levelVad());
    const later = laterVad();
    const async = session(() => later);
    for (const part of parts) {
      part(sync.mic, sync.h.send);
      await flush();
      part(async.mic, async.h.send);
      await flush();
      // Nothing of this part is decided yet: the audio waits.
      expect(async.counts.backlogMs).toBeGreaterThan(0);
      // Decisions come back in uneven batches.
      for (const batch of [1, 7, 3, 30, 2, 1000]) {
        later.answer(batch);
        await flush();
      }
      expect(async.counts.backlogMs).toBe(0);
    }
    expect(heard(async.h.messages())).toEqual(heard(sync.h.messages()));
    expect(heard(sync.h.messages()).map((m) => m.type)).toEqual([
      'input.speech_started',
      'input.speech_stopped',
      'transcript',
      'input.speech_started',
      'input.speech_stopped',
      'transcript',
    ]);
    expect(heard(sync.h.messages())[4]).toMatchObject({ type: 'input.speech_stopped', audioMs: 2100 });
    // Each turn's job got the same audio.
    expect(async.recognizer.jobs.map((j) => j.samples)).toEqual(sync.recognizer.jobs.map((j) => j.samples));
  });

  it('barge-in fires on the same VAD frame as with a synchronous VAD, decisions answered one at a time', async () => {
    const bargeAt = async (vad: ReturnType<typeof laterVad> | null) => {
      const s = session(() => vad ?? levelVad());
      s.h.send({ type: 'SPEAK', request: { id: 'long', text: 'a long answer', mode: 'interrupt', final: true } });
      s.h.liveUpstream()!.write(new Int16Array(960)); // the first audio: the assistant is audible
      const user = new Int16Array(2_000 * 16);
      user.set(tone(1_500), 300 * 16);
      let frames = 0;
      for (let i = 0; i < user.length; i += 320) {
        s.mic(user.subarray(i, i + 320));
        if (vad) {
          await flush();
          vad.answer();
          await flush();
        }
        frames++;
        if (s.h.messages().some((m) => m.type === 'speak.end')) return frames * 20;
      }
      return NaN;
    };
    const syncMs = await bargeAt(null);
    expect(syncMs).toBe(300 + defaultListenLimits.interruptSpeechMs + defaultListenLimits.echoGuardExtraMs);

    // The same with every decision answered after its frame, in a later turn of the event loop.
    expect(await bargeAt(laterVad())).toBe(syncMs);
  });

  it('audio past the backlog bound is refused with audio_overrun, and taken again once decisions come back', async () => {
    const later = laterVad();
    const s = session(() => later, 200);
    s.mic(tone(300));
    const overruns = s.h.messages().filter((m) => m.type === 'error');
    expect(overruns).toHaveLength(5); // 15 frames of 20 ms, 10 fit
    expect(overruns[0]).toMatchObject({ code: 'audio_overrun' });
    expect(s.counts.backlogMs).toBe(200);
    await flush();
    later.answer();
    await flush();
    expect(s.counts.backlogMs).toBe(0);
    s.mic(tone(100));
    expect(s.h.messages().filter((m) => m.type === 'error')).toHaveLength(5);
  });

  it("the session's end drops pending inference once: nothing is heard after, the VAD is closed", async () => {
    const later = laterVad();
    const s = session(() => later);
    s.mic(tone(800));
    await flush();
    expect(later.waiting).toBe(1);
    s.h.send({ type: 'CLIENT_GONE' });
    expect(later.closed).toBe(true);
    expect(s.counts).toMatchObject({ listeners: 0, backlogMs: 0 });
    const before = s.h.frames.length;
    later.answer(); // the late answer finds the session gone
    await flush();
    expect(s.h.frames.length).toBe(before);
    expect(s.h.errors).toEqual([]);
    expect(s.recognizer.live).toBe(0);
  });
});
