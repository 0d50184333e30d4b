// The capture worklet's resampler and framer: 20 ms frames of 16 kHz PCM out of whatever rate
// the AudioContext runs at, speech band kept, what lies above the new Nyquist frequency
// removed, the same output however the input is cut into render quanta. Also the worklet's
// source text, run as the browser would (a processor class and registerProcessor).
import { describe, expect, it } from 'vitest';
import { MicFramer, micFramerSource, micProcessorName } from '../../src/client/micFramer.js';

function tone(rate: number, hz: number, seconds: number, amplitude = 0.5): Float32Array {
  return Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / rate));
}

function run(input: Float32Array, inputRate: number, quantum = 128, outputRate = 16_000): Int16Array[] {
  const frames: Int16Array[] = [];
  const framer = new MicFramer(inputRate, outputRate, Math.round(outputRate / 50), (f) => frames.push(f));
  for (let i = 0; i < input.length; i += quantum) framer.push([input.subarray(i, Math.min(input.length, i + quantum))]);
  return frames;
}

function join(frames: Int16Array[]): Int16Array {
  const out = new Int16Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

/** Amplitude of the `hz` component of 16 kHz samples (scaled to 1.0 = full scale), past the filter's warm-up. */
function amplitudeAt(pcm: Int16Array, hz: number, rate = 16_000): number {
  const from = 800;
  let re = 0;
  let im = 0;
  for (let i = from; i < pcm.length; i++) {
    re += (pcm[i]! / 32768) * Math.cos((2 * Math.PI * hz * i) / rate);
    im += (pcm[i]! / 32768) * Math.sin((2 * Math.PI * hz * i) / rate);
  }
  return (2 * Math.hypot(re, im)) / (pcm.length - from);
}

function rms(pcm: Int16Array, from = 800): number {
  let sum = 0;
  for (let i = from; i < pcm.length; i++) sum += (pcm[i]! / 32768) ** 2;
  return Math.sqrt(sum / (pcm.length - from));
}

describe('MicFramer', () => {
  it('makes 20 ms frames of 320 samples at 16 kHz from 24 and 48 kHz, keeping a 440 Hz tone at its level', () => {
    for (const rate of [24_000, 48_000, 44_100]) {
      const frames = run(tone(rate, 440, 1), rate);
      expect(frames.length, `${rate}`).toBe(50);
      expect(frames.every((f) => f.length === 320)).toBe(true);
      expect(amplitudeAt(join(frames), 440)).toBeCloseTo(0.5, 2);
    }
  });

  it('removes what the 16 kHz output cannot carry: a 12 kHz tone at 48 kHz comes out at least 40 dB down', () => {
    const out = join(run(tone(48_000, 12_000, 1), 48_000));
    expect(20 * Math.log10(rms(out) / (0.5 / Math.SQRT2))).toBeLessThan(-40);
  });

  it('passes 16 kHz through sample for sample', () => {
    const input = tone(16_000, 1_000, 0.2);
    const out = join(run(input, 16_000));
    expect(out.length).toBe(3_200);
    expect(Array.from(out)).toEqual(Array.from(input, (x) => Math.round(x * 32768) || 0));
  });

  it('gives the same samples whatever the block size, and mixes channels down to mono', () => {
    const input = tone(48_000, 300, 0.5);
    const a = join(run(input, 48_000, 128));
    const b = join(run(input, 48_000, 1_000));
    expect(b).toEqual(a);
    const frames: Int16Array[] = [];
    const framer = new MicFramer(48_000, 16_000, 320, (f) => frames.push(f));
    for (let i = 0; i < input.length; i += 128) {
      const left = input.subarray(i, i + 128);
      framer.push([left, new Float32Array(left.length)]);
    }
    expect(amplitudeAt(join(frames), 300)).toBeCloseTo(0.25, 2);
  });

  it('clips instead of wrapping around', () => {
    const out = join(run(new Float32Array(16_000).fill(2), 16_000));
    expect(Math.min(...out)).toBe(32767);
  });
});

describe('the capture worklet module', () => {
  it('registers a processor that posts each full frame with its buffer transferred', () => {
    const posted: { frame: Int16Array; transfer: ArrayBuffer[] }[] = [];
    const registered = new Map<string, new (options: unknown) => { process(inputs: Float32Array[][]): boolean; port: unknown }>();
    class AudioWorkletProcessor {
      port = { postMessage: (frame: Int16Array, transfer: ArrayBuffer[]) => posted.push({ frame, transfer }), onmessage: null as unknown };
    }
    new Function('AudioWorkletProcessor', 'registerProcessor', 'sampleRate', micFramerSource())(
      AudioWorkletProcessor,
      (name: string, processor: never) => registered.set(name, processor),
      48_000,
    );
    const Processor = registered.get(micProcessorName)!;
    const node = new Processor({ processorOptions: { outputRate: 16_000, frameMs: 20 } });
    const input = tone(48_000, 440, 0.1);
    for (let i = 0; i < input.length; i += 128) expect(node.process([[input.subarray(i, i + 128)]])).toBe(true);
    expect(node.process([[]])).toBe(true); // a disconnected input: nothing, no error
    expect(posted).toHaveLength(5);
    expect(posted.every((p) => p.frame.length === 320 && p.transfer[0] === p.frame.buffer)).toBe(true);
  });
});
