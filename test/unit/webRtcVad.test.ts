import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWebRtcVad, type WebRtcVadFactory } from '../../src/listening/webRtcVad.js';
import { listenSampleRate, type VoiceFrame } from '../../src/listening/types.js';
import { silence, speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';

const samplesPerMs = listenSampleRate / 1000;
let renderer: SpeechRenderer;
let vad: WebRtcVadFactory;
let sentence: Int16Array;

beforeAll(async () => {
  renderer = await speechRenderer();
  vad = await loadWebRtcVad();
  sentence = await renderer.render('The quick brown fox jumps over the lazy dog.', { leadMs: 300, tailMs: 800 });
});

afterAll(async () => {
  await renderer?.close();
});

/** Where the rendered samples are not digital silence: the truth the detector is judged by. */
function truth(pcm: Int16Array): { onsetMs: number; offsetMs: number } {
  let first = -1;
  let last = -1;
  for (let i = 0; i < pcm.length; i++) {
    if (pcm[i] !== 0) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return { onsetMs: first / samplesPerMs, offsetMs: (last + 1) / samplesPerMs };
}

/** Start of the first speech frame and end of the last, on the media clock the frames carry. */
function detected(frames: VoiceFrame[]): { onsetMs: number; offsetMs: number; speechMs: number } {
  let at = 0;
  let onsetMs = -1;
  let offsetMs = -1;
  let speechMs = 0;
  for (const f of frames) {
    if (f.speech) {
      if (onsetMs < 0) onsetMs = at;
      offsetMs = at + f.durationMs;
      speechMs += f.durationMs;
    }
    at += f.durationMs;
  }
  return { onsetMs, offsetMs, speechMs };
}

/** Deterministic white noise at `db` dBFS RMS (uniform: peak = rms * sqrt 3). */
function hiss(ms: number, db: number, seed = 1): Int16Array {
  const out = new Int16Array(Math.round(ms * samplesPerMs));
  const peak = 32768 * 10 ** (db / 20) * Math.sqrt(3);
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0; // LCG: the same hiss on every run
    out[i] = Math.round((s / 2 ** 32 - 0.5) * 2 * peak);
  }
  return out;
}

describe('WebRTC VAD', () => {
  it('finds the onset and offset of a rendered sentence within 60 ms, and measures its cost', async () => {
    const sentences = [
      sentence,
      await renderer.render('What time is it?', { leadMs: 300, tailMs: 800 }),
      await renderer.render('Please turn off the lights in the kitchen.', { leadMs: 500, tailMs: 800 }),
    ];
    let cpuMicros = 0;
    let audioMs = 0;
    for (const pcm of sentences) {
      const detector = vad.create();
      const before = process.cpuUsage();
      const frames = detector.push(pcm);
      const cpu = process.cpuUsage(before);
      cpuMicros += cpu.user + cpu.system;
      audioMs += pcm.length / samplesPerMs;
      detector.close();

      const want = truth(pcm);
      const got = detected(frames);
      console.log(
        `WebRTC VAD onset ${got.onsetMs} ms (truth ${want.onsetMs.toFixed(1)}, error ${(got.onsetMs - want.onsetMs).toFixed(1)}),` +
          ` offset ${got.offsetMs} ms (truth ${want.offsetMs.toFixed(1)}, error ${(got.offsetMs - want.offsetMs).toFixed(1)})`,
      );
      expect(Math.abs(got.onsetMs - want.onsetMs)).toBeLessThanOrEqual(60);
      expect(Math.abs(got.offsetMs - want.offsetMs)).toBeLessThanOrEqual(60);
      // Speech is heard through the sentence, not only at its edges.
      expect(got.speechMs).toBeGreaterThan(0.8 * (want.offsetMs - want.onsetMs));
      expect(frames.length).toBe(Math.floor(pcm.length / (20 * samplesPerMs)));
    }
    console.log(`WebRTC VAD CPU: ${((cpuMicros / 1000) / (audioMs / 1000)).toFixed(2)} ms per audio-second (${(audioMs / 1000).toFixed(1)} s of audio)`);
  });

  it('hears no speech in digital silence, and reports it at -100 dBFS', () => {
    const detector = vad.create();
    const frames = detector.push(silence(3000));
    detector.close();
    expect(frames).toHaveLength(150);
    expect(frames.every((f) => !f.speech && f.levelDb === -100 && f.durationMs === 20)).toBe(true);
  });

  it.each([0, 1, 2, 3] as const)('hears no speech in a -60 dBFS hiss (mode %i), and measures its level', (mode) => {
    const detector = vad.create({ mode });
    const frames = detector.push(hiss(5000, -60, mode + 7));
    detector.close();
    expect(frames.filter((f) => f.speech)).toEqual([]);
    for (const f of frames) expect(Math.abs(f.levelDb - -60)).toBeLessThan(1.5);
  });

  it('still hears a quieter talker: the sentence at -10 dB is found within 60 ms', () => {
    const want = truth(sentence);
    for (const db of [-10, -20]) {
      const quiet = Int16Array.from(sentence, (s) => Math.round(s * 10 ** (db / 20)));
      const detector = vad.create();
      const got = detected(detector.push(quiet));
      detector.close();
      console.log(`WebRTC VAD at ${db} dB: onset error ${(got.onsetMs - want.onsetMs).toFixed(1)} ms, offset error ${(got.offsetMs - want.offsetMs).toFixed(1)} ms, speech ${got.speechMs} ms`);
      if (db === -10) {
        expect(Math.abs(got.onsetMs - want.onsetMs)).toBeLessThanOrEqual(60);
        expect(Math.abs(got.offsetMs - want.offsetMs)).toBeLessThanOrEqual(60);
        expect(got.speechMs).toBeGreaterThan(0.7 * (want.offsetMs - want.onsetMs));
      }
    }
  });

  it('needs its level floor: without it libfvad calls the silence after speech speech', () => {
    const detector = vad.create({ minSpeechDb: -100 });
    const frames = detector.push(sentence);
    detector.close();
    const hangover = frames.filter((f) => f.speech && f.levelDb === -100);
    expect(hangover.length).toBeGreaterThanOrEqual(3); // what the default floor removes
  });

  it('reports the RMS level in dBFS', () => {
    const sine = Int16Array.from({ length: 320 }, (_, i) => Math.round(16384 * Math.sin((2 * Math.PI * 500 * i) / listenSampleRate)));
    const detector = vad.create();
    const [frame] = detector.push(sine);
    detector.close();
    expect(frame!.levelDb).toBeCloseTo(20 * Math.log10(0.5 / Math.SQRT2), 1); // -9.03 dBFS
  });

  it.each([10, 20, 30] as const)('decides every %i ms frame and keeps the remainder for the next push', (frameMs) => {
    const detector = vad.create({ frameMs });
    const size = frameMs * samplesPerMs;
    expect(detector.frameMs).toBe(frameMs);
    expect(detector.push(sentence.subarray(0, size - 1))).toEqual([]);
    const [first, ...rest] = detector.push(sentence.subarray(size - 1, size));
    expect(rest).toEqual([]);
    expect(first!.durationMs).toBe(frameMs);
    expect(detector.push(sentence.subarray(size, size + 3 * size + 5))).toHaveLength(3);
    detector.close();
  });

  test.prop([fc.array(fc.nat({ max: 60_000 }), { maxLength: 40 }), fc.constantFrom(10, 20, 30)])(
    'gives the same decisions whatever the split of the pushes',
    (cuts, frameMs) => {
      const pcm = sentence.subarray(0, 60_000);
      const whole = vad.create({ frameMs: frameMs as 10 | 20 | 30 });
      const expected = whole.push(pcm);
      whole.close();

      const split = vad.create({ frameMs: frameMs as 10 | 20 | 30 });
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const got: VoiceFrame[] = [];
      let from = 0;
      for (const to of [...points, pcm.length]) {
        got.push(...split.push(pcm.subarray(from, to)));
        from = to;
      }
      split.close();
      expect(got).toEqual(expected);
    },
  );

  it('keeps one state per detector: interleaved detectors decide as if alone', () => {
    const hissy = hiss(3700, -30, 3);
    const alone = [vad.create(), vad.create()];
    const expectedA = alone[0]!.push(sentence);
    const expectedB = alone[1]!.push(hissy);
    for (const d of alone) d.close();

    const a = vad.create();
    const b = vad.create();
    const gotA: VoiceFrame[] = [];
    const gotB: VoiceFrame[] = [];
    for (let i = 0; i < Math.max(sentence.length, hissy.length); i += 480) {
      gotA.push(...a.push(sentence.subarray(i, i + 480)));
      gotB.push(...b.push(hissy.subarray(i, i + 480)));
    }
    a.close();
    b.close();
    expect(gotA).toEqual(expectedA);
    expect(gotB).toEqual(expectedB);
  });

  it('reset() forgets the partial frame and the adapted state', () => {
    const fresh = vad.create();
    const expected = fresh.push(sentence);
    fresh.close();

    const used = vad.create();
    used.push(hiss(2000, -30, 5));
    used.push(sentence.subarray(0, 100)); // a partial frame that must not leak into the next
    used.reset();
    expect(used.push(sentence)).toEqual(expected);
    used.close();
  });

  it('close() is idempotent; a closed detector decides nothing', () => {
    const detector = vad.create();
    detector.close();
    detector.close();
    expect(detector.push(sentence)).toEqual([]);
    detector.reset();
  });

  it('refuses a mode or frame length libfvad does not have', () => {
    expect(() => vad.create({ mode: 4 as never })).toThrow(RangeError);
    expect(() => vad.create({ frameMs: 25 as never })).toThrow(RangeError);
  });

  it('loads the wasm module once per process', () => {
    expect(loadWebRtcVad()).toBe(loadWebRtcVad());
  });
});
