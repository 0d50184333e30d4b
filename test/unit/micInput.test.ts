import { fc, test } from '@fast-check/vitest';
import OpusScript from 'opusscript';
import { describe, expect, it } from 'vitest';
import { MicInput, type MicFrameResult } from '../../src/listening/micInput.js';
import { opusPacketDurationMs } from '../../src/listening/opusUplink.js';

const pcmFormat = { encoding: 'pcm_s16le', sampleRate: 16_000 } as const;
const opusFormat = { encoding: 'opus', sampleRate: 16_000 } as const;

/** A pcm_s16le frame of `ms` of a tone (samples are nonzero so copies can be checked). */
function pcmFrame(ms: number): Uint8Array {
  const pcm = Int16Array.from({ length: ms * 16 }, (_, i) => Math.round(3000 * Math.sin(i / 5)));
  return new Uint8Array(pcm.buffer);
}

/** A clock the test moves. */
function fakeClock(start = 1000): { now: () => number; advance: (ms: number) => void; set: (t: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms), set: (v) => void (t = v) };
}

function errorOf(result: MicFrameResult): { code: string; message: string } {
  if (result.ok) throw new Error('expected a refusal');
  return result.error;
}

describe('MicInput: the shape of a frame', () => {
  it.each([
    ['an odd byte count', new Uint8Array(321), /odd byte count \(321\)/],
    ['5 ms', pcmFrame(5), /10-250 ms.*5 ms/],
    ['300 ms', pcmFrame(300), /10-250 ms.*300 ms/],
    ['nothing', new Uint8Array(0), /10-250 ms.*0 ms/],
  ])('refuses %s with bad_audio and says what was wrong', (_, frame, message) => {
    const mic = new MicInput(pcmFormat, { now: fakeClock().now });
    const error = errorOf(mic.accept(frame));
    expect(error.code).toBe('bad_audio');
    expect(error.message).toMatch(message);
    expect(mic.audioMs).toBe(0); // a refused frame does not move the media clock
    mic.close();
  });

  it('takes 10 ms and 250 ms frames, and copies them out of the socket buffer', () => {
    const mic = new MicInput(pcmFormat, { now: fakeClock().now });
    const ten = pcmFrame(10);
    const odd = new Uint8Array(ten.length + 1);
    odd.set(ten, 1); // the frame at an odd byte offset, as in a pooled buffer
    const first = mic.accept(odd.subarray(1));
    if (!first.ok) throw new Error(first.error.message);
    expect(Array.from(first.pcm)).toEqual(Array.from(new Int16Array(ten.buffer)));
    odd.fill(0); // the socket reuses its buffer: the accepted audio must not change
    expect(first.pcm.some((s) => s !== 0)).toBe(true);
    expect(first.audioMs).toBe(10);
    const second = mic.accept(pcmFrame(250));
    expect(second.ok && second.audioMs).toBe(260);
    mic.close();
  });
});

describe('MicInput: real time', () => {
  it('drops a flood of 20 s in 100 ms with audio_overrun, keeping accepted ≤ elapsed + burst', () => {
    const clock = fakeClock();
    const mic = new MicInput(pcmFormat, { now: clock.now, burstMs: 2000 });
    const frame = pcmFrame(20);
    let accepted = 0;
    let overruns = 0;
    const start = clock.now();
    for (let i = 0; i < 1000; i++) {
      const result = mic.accept(frame);
      if (result.ok) accepted += 20;
      else {
        expect(result.error.code).toBe('audio_overrun');
        overruns++;
      }
      expect(accepted).toBeLessThanOrEqual(clock.now() - start + 2000);
      clock.advance(0.1);
    }
    expect(overruns).toBeGreaterThan(880);
    expect(accepted).toBeLessThanOrEqual(2100);
    expect(mic.audioMs).toBe(accepted);

    // The flood stops; after a second, a second's worth of audio is taken again.
    clock.advance(1000);
    let again = 0;
    while (mic.accept(frame).ok) again += 20;
    expect(again).toBeGreaterThanOrEqual(980);
    expect(again).toBeLessThanOrEqual(1020);

    // A long pause banks no more than the burst.
    clock.advance(60_000);
    let afterPause = 0;
    while (mic.accept(frame).ok) afterPause += 20;
    expect(afterPause).toBe(2000);
    mic.close();
  });

  it('the overrun message says what happened', () => {
    const mic = new MicInput(pcmFormat, { now: fakeClock().now, burstMs: 250 });
    expect(mic.accept(pcmFrame(250)).ok).toBe(true);
    expect(errorOf(mic.accept(pcmFrame(20))).message).toMatch(/faster than real time.*20 ms frame dropped/);
    mic.close();
  });

  test.prop([
    fc.array(fc.record({ ms: fc.integer({ min: 10, max: 250 }), jitter: fc.integer({ min: -50, max: 50 }) }), { minLength: 1, maxLength: 300 }),
    // The smallest burst that can hold: a 250 ms frame plus 100 ms of jitter spread.
    fc.constantFrom(350, 500, 2000),
  ])('never trips on real-time pacing with ±50 ms of jitter, and the media clock counts exactly the samples', (sends, burstMs) => {
    const clock = fakeClock(0);
    const mic = new MicInput(pcmFormat, { now: clock.now, burstMs });
    // A frame leaves the client when its capture ends: at the audio time of its end (+ jitter).
    let captured = 0;
    let last = -Infinity;
    let samples = 0;
    for (const { ms, jitter } of sends) {
      captured += ms;
      last = Math.max(last, captured - sends[0]!.ms + jitter); // a clock never runs backwards
      clock.set(last);
      const result = mic.accept(pcmFrame(ms));
      if (!result.ok) throw new Error(`${result.error.code}: ${result.error.message}`);
      samples += result.pcm.length;
      expect(result.audioMs).toBe(samples / 16);
    }
    expect(mic.audioMs).toBe(captured);
    mic.close();
  });
});

describe('MicInput: Opus', () => {
  function packets(count: number): Buffer[] {
    const encoder = new OpusScript(16_000, 1, OpusScript.Application.VOIP);
    try {
      const tone = Int16Array.from({ length: 320 }, (_, i) => Math.round(5000 * Math.sin(i / 4)));
      return Array.from({ length: count }, () => encoder.encode(Buffer.from(tone.buffer), 320));
    } finally {
      encoder.delete();
    }
  }

  it('decodes each 20 ms packet and advances the media clock by its samples', () => {
    const mic = new MicInput(opusFormat, { now: fakeClock().now });
    for (const [i, packet] of packets(10).entries()) {
      expect(opusPacketDurationMs(packet)).toBe(20);
      const result = mic.accept(packet);
      if (!result.ok) throw new Error(result.error.message);
      expect(result.pcm.length).toBe(320);
      expect(result.audioMs).toBe(20 * (i + 1));
    }
    mic.close();
  });

  it('refuses oversized, headerless and undecodable packets with bad_audio, and decodes on after', () => {
    const mic = new MicInput(opusFormat, { now: fakeClock().now });
    const [good] = packets(1);
    expect(errorOf(mic.accept(new Uint8Array(1276))).message).toMatch(/at most 1275 bytes/);
    expect(errorOf(mic.accept(new Uint8Array(0))).code).toBe('bad_audio');
    expect(errorOf(mic.accept(Uint8Array.of(0x03))).message).toMatch(/valid Opus packet header/); // code 3 without its count byte
    expect(errorOf(mic.accept(Uint8Array.of((16 << 3) | 1))).message).toMatch(/5 ms/); // CELT 2.5 ms ×2: too short a frame
    const undecodable = errorOf(mic.accept(Uint8Array.from([1, 2, 3, 4, 5, 250, 251, 252])));
    expect(undecodable.code).toBe('bad_audio');
    expect(undecodable.message).toMatch(/not an Opus packet/);
    expect(mic.audioMs).toBe(0);
    expect(mic.accept(good!).ok).toBe(true);
    mic.close();
  });

  it('paces Opus by the header: a flood is dropped before it is decoded', () => {
    const clock = fakeClock();
    const mic = new MicInput(opusFormat, { now: clock.now, burstMs: 400 });
    const all = packets(100);
    const results = all.map((p) => mic.accept(p));
    expect(results.filter((r) => r.ok)).toHaveLength(20);
    expect(results.slice(20).every((r) => !r.ok && r.error.code === 'audio_overrun')).toBe(true);
    mic.close();
  });
});

describe('MicInput: lifecycle', () => {
  it('close() is idempotent and a closed input refuses frames without throwing', () => {
    const mic = new MicInput(opusFormat);
    mic.close();
    mic.close();
    expect(errorOf(mic.accept(pcmFrame(20))).code).toBe('bad_request');
  });

  it('refuses a listen format other than 16 kHz pcm_s16le or opus', () => {
    expect(() => new MicInput({ encoding: 'pcm_s16le', sampleRate: 48_000 as never })).toThrow(RangeError);
    expect(() => new MicInput({ encoding: 'mp3' as never, sampleRate: 16_000 })).toThrow(RangeError);
  });
});
