import OpusScript from 'opusscript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxOpusPacketBytes, OpusUplink } from '../../src/listening/opusUplink.js';
import { concatInt16 } from '../../src/audio/pcm.js';
import { frames, speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';

let renderer: SpeechRenderer;
let sentence: Int16Array;

beforeAll(async () => {
  renderer = await speechRenderer();
  sentence = await renderer.render('Please turn off the lights in the kitchen.', { leadMs: 300, tailMs: 300 });
});

afterAll(async () => {
  await renderer?.close();
});

/** The client's side: 20 ms Opus packets of `pcm` (the last frame zero-padded). */
function encode(pcm: Int16Array): Buffer[] {
  const encoder = new OpusScript(16_000, 1, OpusScript.Application.VOIP);
  try {
    encoder.setBitrate(24_000);
    return frames(pcm, 20).map((f) => {
      const full = new Int16Array(320);
      full.set(f);
      return encoder.encode(Buffer.from(full.buffer), 320);
    });
  } finally {
    encoder.delete();
  }
}

/** Best normalised cross-correlation of `b` against `a` over lags 0..maxLag (the codec's delay). */
function bestCorrelation(a: Int16Array, b: Int16Array, maxLag = 480): { lag: number; r: number } {
  let best = { lag: 0, r: -1 };
  for (let lag = 0; lag <= maxLag; lag++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = 0; i + lag < b.length && i < a.length; i++) {
      const x = a[i]!;
      const y = b[i + lag]!;
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    const r = ab / Math.sqrt(aa * bb);
    if (r > best.r) best = { lag, r };
  }
  return best;
}

describe('Opus uplink', () => {
  it('decodes a spoken sentence sent as 20 ms packets: right length, same waveform', () => {
    const packets = encode(sentence);
    const uplink = new OpusUplink();
    const decoded: Int16Array[] = [];
    for (const packet of packets) {
      const result = uplink.decode(packet);
      if (!result.ok) throw new Error(result.error.message);
      expect(result.pcm.length).toBe(320);
      decoded.push(result.pcm);
    }
    uplink.close();
    const pcm = concatInt16(decoded);
    expect(pcm.length).toBe(packets.length * 320);
    const { lag, r } = bestCorrelation(sentence, pcm);
    console.log(`Opus 24 kb/s round trip: correlation ${r.toFixed(3)} at a codec delay of ${lag} samples (${(lag / 16).toFixed(1)} ms)`);
    expect(r).toBeGreaterThan(0.8);
    expect(lag).toBeLessThan(320);
  });

  it('refuses garbage, empty and oversized packets with bad_audio, and still decodes after', () => {
    const packets = encode(sentence.subarray(0, 16_000));
    const uplink = new OpusUplink();
    const garbage = [
      new Uint8Array(0),
      new Uint8Array(maxOpusPacketBytes + 1),
      Uint8Array.from([1, 2, 3, 4, 5, 250, 251, 252]), // an invalid TOC/length combination
      Uint8Array.from([0xff, 0xff, 0xff]),
    ];
    let refused = 0;
    for (const [i, packet] of packets.entries()) {
      const bad = garbage[i % garbage.length]!;
      const rejected = uplink.decode(bad);
      expect(rejected.ok).toBe(false);
      if (!rejected.ok) {
        expect(rejected.error.code).toBe('bad_audio');
        expect(rejected.error.message.length).toBeGreaterThan(10);
        refused++;
      }
      const good = uplink.decode(packet);
      expect(good.ok).toBe(true);
    }
    expect(refused).toBe(packets.length);
    uplink.close();
  });

  it('says why: the oversized packet names its size', () => {
    const uplink = new OpusUplink();
    const result = uplink.decode(new Uint8Array(4000));
    uplink.close();
    expect(result).toEqual({ ok: false, error: { code: 'bad_audio', message: expect.stringContaining('4000') } });
  });

  it('gives the caller its own aligned copy, even from a view at an odd byte offset', () => {
    const [packet] = encode(sentence.subarray(0, 320));
    const backing = new Uint8Array(packet!.length + 1);
    backing.set(packet!, 1);
    const uplink = new OpusUplink();
    const a = uplink.decode(backing.subarray(1));
    const b = uplink.decode(backing.subarray(1));
    uplink.close();
    if (!a.ok || !b.ok) throw new Error('decode failed');
    expect(a.pcm.byteOffset % 2).toBe(0);
    expect(a.pcm.buffer === b.pcm.buffer && a.pcm.byteOffset === b.pcm.byteOffset).toBe(false);
  });

  it('close() is idempotent and a closed uplink refuses without throwing', () => {
    const [packet] = encode(sentence.subarray(0, 320));
    const uplink = new OpusUplink();
    uplink.close();
    uplink.close();
    const result = uplink.decode(packet!);
    expect(result.ok).toBe(false);
    // The wasm heap survived the double close: a new decoder still works.
    const next = new OpusUplink();
    expect(next.decode(packet!).ok).toBe(true);
    next.close();
  });
});
