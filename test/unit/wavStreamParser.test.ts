// The incremental WAV reader against the chunk layouts real encoders write, split at
// every possible place a network could split it.
import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { int16ToBytes, wavHeader } from '../../src/audio/pcm.js';
import { WavFormatError, WavStreamParser } from '../../src/audio/wavStreamParser.js';

const le32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};
const ascii = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)));
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const chunk = (id: string, body: Uint8Array) => cat(ascii(id), le32(body.length), body, body.length % 2 ? new Uint8Array(1) : new Uint8Array(0));

function fmt(rate: number, channels = 1, format = 1, bits = 16, extra = 0): Uint8Array {
  const b = new Uint8Array(16 + extra);
  const v = new DataView(b.buffer);
  v.setUint16(0, format, true);
  v.setUint16(2, channels, true);
  v.setUint32(4, rate, true);
  v.setUint32(8, rate * channels * 2, true);
  v.setUint16(12, channels * 2, true);
  v.setUint16(14, bits, true);
  return chunk('fmt ', b);
}

function wav(parts: Uint8Array[]): Uint8Array {
  return cat(ascii('RIFF'), le32(0xffffffff), ascii('WAVE'), ...parts);
}

function readAll(bytes: Uint8Array, cuts: number[]): { samples: number[]; rate: number } {
  const parser = new WavStreamParser();
  const samples: number[] = [];
  let from = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length)].sort((a, b) => a - b).concat(bytes.length)) {
    samples.push(...parser.push(bytes.subarray(from, cut)));
    from = cut;
  }
  samples.push(...parser.end());
  return { samples, rate: parser.format!.sampleRate };
}

const pcm = Int16Array.from({ length: 301 }, (_, i) => ((i * 7919) % 65536) - 32768);
const data = (size?: number) => cat(ascii('data'), le32(size ?? pcm.length * 2), int16ToBytes(pcm));

describe('WavStreamParser', () => {
  const layouts: Record<string, Uint8Array> = {
    'canonical 44-byte header': cat(wavHeader(24_000, pcm.length * 2), int16ToBytes(pcm)),
    'LIST (odd size, padded) after fmt': wav([fmt(24_000), chunk('LIST', ascii('INFOISFTabc')), data()]),
    'LIST before fmt': wav([chunk('LIST', ascii('INFOISFTabcd')), fmt(24_000), data()]),
    'fact and an unknown chunk': wav([fmt(24_000), chunk('fact', le32(301)), chunk('zzzz', new Uint8Array(1000)), data()]),
    'streaming placeholder size 0xFFFFFFFF': wav([fmt(24_000), data(0xffffffff)]),
    'streaming placeholder size 0': wav([fmt(24_000), data(0)]),
    'fmt with a cbSize extension': wav([fmt(24_000, 1, 1, 16, 2), data()]),
  };

  for (const [name, bytes] of Object.entries(layouts)) {
    test.prop([fc.array(fc.nat({ max: bytes.length }), { maxLength: 12 })], { numRuns: 200 })(
      `${name}: every split gives the same samples and rate`,
      (cuts) => {
        const { samples, rate } = readAll(bytes, cuts);
        expect(rate).toBe(24_000);
        expect(samples).toEqual([...pcm]);
      },
    );
  }

  it('reads byte by byte', () => {
    const bytes = layouts['LIST before fmt']!;
    expect(readAll(bytes, Array.from({ length: bytes.length }, (_, i) => i)).samples).toEqual([...pcm]);
  });

  it('stops at the end of a sized data chunk and ignores trailing chunks', () => {
    const bytes = wav([fmt(16_000), data(), chunk('LIST', ascii('INFOxxxx'))]);
    const { samples, rate } = readAll(bytes, []);
    expect(rate).toBe(16_000);
    expect(samples).toEqual([...pcm]);
  });

  it('downmixes stereo to mono by averaging', () => {
    const frames = new Int16Array([100, 300, -50, -150, 7, 8]);
    const bytes = wav([fmt(22_050, 2), cat(ascii('data'), le32(12), int16ToBytes(frames))]);
    expect(readAll(bytes, [47]).samples).toEqual([200, -100, 8]);
  });

  it.each([
    ['not RIFF', ascii('<html>hello world</html>'), /not a RIFF\/WAVE/],
    ['data before fmt', wav([data()]), /data chunk before its fmt/],
    ['float samples', wav([fmt(24_000, 1, 3, 32), data()]), /unsupported WAV encoding/],
    ['8-bit samples', wav([fmt(24_000, 1, 1, 8), data()]), /unsupported WAV encoding/],
    ['absurd chunk size', wav([fmt(24_000), cat(ascii('junk'), le32(0x7ffffff0), new Uint8Array(100))]), /exceed/],
    ['absurd sample rate', wav([fmt(3), data()]), /sample rate/],
  ])('refuses %s with a WavFormatError', (_name, bytes, message) => {
    const parser = new WavStreamParser();
    expect(() => parser.push(bytes)).toThrow(message);
    expect(() => new WavStreamParser().push(bytes)).toThrow(WavFormatError);
  });

  it('refuses a stream that ends inside its header', () => {
    const parser = new WavStreamParser();
    parser.push(layouts['LIST before fmt']!.subarray(0, 30));
    expect(() => parser.end()).toThrow(/ended inside its header|before its data/);
  });
});
