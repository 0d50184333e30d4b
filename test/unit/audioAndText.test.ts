import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { PcmChunker } from '../../src/audio/chunker.js';
import { StreamResampler } from '../../src/audio/resampler.js';
import { SentenceSplitter } from '../../src/text/sentenceSplitter.js';

describe('PcmChunker', () => {
  test.prop([fc.integer({ min: 1, max: 500 }), fc.array(fc.integer({ min: 0, max: 1200 }), { maxLength: 30 })])(
    'emits full frames in order and loses no sample',
    (frameSamples, sizes) => {
      const chunker = new PcmChunker(frameSamples);
      let counter = 0;
      const out: number[] = [];
      for (const size of sizes) {
        const block = Int16Array.from({ length: size }, () => counter++ % 30000);
        for (const f of chunker.push(block)) {
          expect(f.length).toBe(frameSamples);
          out.push(...f);
        }
      }
      const last = chunker.flush();
      if (last) {
        expect(last.length).toBeLessThan(frameSamples);
        out.push(...last);
      }
      expect(out).toEqual(Array.from({ length: counter }, (_, i) => i % 30000));
    },
  );
});

describe('StreamResampler', () => {
  it('turns 22 050 Hz into 24 000 Hz keeping duration and pitch, and destroy is idempotent', async () => {
    const r = await StreamResampler.create(22_050, 24_000);
    // 1 s of a 440 Hz tone, fed in 100 ms blocks as a provider would.
    const input = Int16Array.from({ length: 22_050 }, (_, i) => Math.round(10_000 * Math.sin((2 * Math.PI * 440 * i) / 22_050)));
    const parts: Int16Array[] = [];
    for (let i = 0; i < input.length; i += 2205) parts.push(r.process(input.subarray(i, i + 2205)));
    parts.push(r.flush());
    const out = Int16Array.from(parts.flatMap((p) => Array.from(p)));
    expect(out.length).toBe(24_000);
    // Count zero crossings in the steady middle: ~880 per second for 440 Hz.
    let crossings = 0;
    for (let i = 2_400; i < 21_600; i++) if ((out[i - 1]! < 0) !== (out[i]! < 0)) crossings++;
    expect(crossings / 0.8).toBeGreaterThan(860);
    expect(crossings / 0.8).toBeLessThan(900);
    r.destroy();
    r.destroy();
    r.destroy();
    expect(() => r.process(new Int16Array(10))).toThrow();
  });

  it('reuses a released converter of the same rates, reset: its output is sample-identical to a fresh one', async () => {
    const input = Int16Array.from({ length: 4_410 }, (_, i) => Math.round(8_000 * Math.sin((2 * Math.PI * 300 * i) / 22_050)));
    const run = (r: StreamResampler) => {
      const out = [r.process(input.subarray(0, 2_205)), r.process(input.subarray(2_205)), r.flush()];
      return Int16Array.from(out.flatMap((p) => Array.from(p)));
    };
    const first = await StreamResampler.create(22_050, 24_000);
    const firstSrc = (first as unknown as { src: unknown }).src;
    const expected = run(first);
    first.destroy();
    const second = await StreamResampler.create(22_050, 24_000);
    // The same WASM instance (making one holds the event loop for ~100 ms), with none of the last stream's filter state.
    expect((second as unknown as { src: unknown }).src).toBe(firstSrc);
    expect(Array.from(run(second))).toEqual(Array.from(expected));
    second.destroy();
    const otherRates = await StreamResampler.create(16_000, 24_000);
    expect((otherRates as unknown as { src: unknown }).src).not.toBe(firstSrc);
    otherRates.destroy();
  });
});

describe('SentenceSplitter', () => {
  it('releases a sentence only once text after it arrived, or the text ended', () => {
    const s = new SentenceSplitter(300);
    s.push('Hello there. How');
    expect(s.next()).toBe('Hello there.');
    expect(s.next()).toBeNull();
    s.push(' are you?');
    expect(s.next()).toBeNull();
    s.end();
    expect(s.next()).toBe('How are you?');
    expect(s.done).toBe(true);
  });

  it('releases a sentence that ends in a terminator and whitespace without waiting for more text', () => {
    const s = new SentenceSplitter(300);
    s.push('The first sentence is complete. ');
    expect(s.next()).toBe('The first sentence is complete.');
    s.push('Is this one? ');
    expect(s.next()).toBe('Is this one?');
    s.push('She said "stop!"\n');
    expect(s.next()).toBe('She said "stop!"');
    s.push('It cost 3.5 dollars. ');
    expect(s.next()).toBe('It cost 3.5 dollars.');
    // Arabic question mark, Arabic full stop, and a Latin full stop in Arabic text.
    s.push('مرحبا بكم؟ كيف حالك۔ هذا جيد. ');
    expect([s.next(), s.next(), s.next(), s.next()]).toEqual(['مرحبا بكم؟', 'كيف حالك۔', 'هذا جيد.', null]);
    expect(s.done).toBe(false);
  });

  it('holds a sentence without a terminator and whitespace, or ending in an abbreviation, until more text or the end', () => {
    const s = new SentenceSplitter(300);
    for (const held of ['Hello there', ' and goodbye.']) {
      s.push(held);
      expect(s.next()).toBeNull();
    }
    s.push(' ');
    expect(s.next()).toBe('Hello there and goodbye.');
    for (const held of ['We met Dr. ', 'Smith, e.g. ', 'in the U.S. ', 'at 5 p.m. ', 'with J. ', 'R. R. Tolkien at 3.']) {
      s.push(held);
      expect(s.next()).toBeNull();
    }
    s.push(' Then');
    expect(s.next()).toBe('We met Dr. Smith, e.g. in the U.S. at 5 p.m. with J. R. R. Tolkien at 3.');
    expect(s.next()).toBeNull();
    s.end();
    expect([s.next(), s.done]).toEqual(['Then', true]);
  });

  it('does not split after an abbreviation inside the text', () => {
    const s = new SentenceSplitter(300);
    s.push('Dr. Smith lives in the U.S. now. Mr. Jones, e.g. his friend, does too.', true);
    expect([s.next(), s.next(), s.next()]).toEqual(['Dr. Smith lives in the U.S. now.', 'Mr. Jones, e.g. his friend, does too.', null]);
  });

  it('flush releases the held text as a piece; text after it starts a new piece, and nothing is spoken twice', () => {
    const s = new SentenceSplitter(300);
    s.push('Hello there');
    expect(s.next()).toBeNull();
    s.flush();
    expect(s.next()).toBe('Hello there');
    s.flush(); // nothing held: nothing to speak
    expect(s.next()).toBeNull();
    s.push(', and welcome. More');
    expect(s.next()).toBe(', and welcome.');
    s.push(' to come', true);
    expect([s.next(), s.next(), s.done]).toEqual(['More to come', null, true]);
    s.flush(); // after the end: nothing
    expect(s.next()).toBeNull();
  });

  it('splits Arabic sentences', () => {
    const s = new SentenceSplitter(300);
    s.push('مرحبا بكم. كيف حالك؟');
    s.end();
    expect([s.next(), s.next(), s.next()]).toEqual(['مرحبا بكم.', 'كيف حالك؟', null]);
  });

  test.prop([fc.array(fc.string({ maxLength: 80 }), { maxLength: 12 }), fc.integer({ min: 20, max: 200 })])(
    'keeps every word, in order, and no piece exceeds the limit',
    (parts, max) => {
      const s = new SentenceSplitter(max);
      const pieces: string[] = [];
      for (const p of parts) {
        s.push(p);
        for (let x = s.next(); x !== null; x = s.next()) pieces.push(x);
      }
      s.end();
      for (let x = s.next(); x !== null; x = s.next()) pieces.push(x);
      for (const p of pieces) expect(p.length).toBeLessThanOrEqual(max);
      const squash = (t: string) => t.replace(/\s+/gu, '');
      expect(squash(pieces.join(''))).toBe(squash(parts.join('')));
    },
  );
});

describe('SentenceSplitter with quiet-period flushes', () => {
  test.prop([
    fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('Dr. ', 'e.g. ', '3.5 ', '. ', '? ', '؟ ', '۔ ', '!')), fc.boolean()), { maxLength: 16 }),
    fc.integer({ min: 20, max: 200 }),
  ])('speaks every word exactly once, in order, whenever the flushes come', (parts, max) => {
    const s = new SentenceSplitter(max);
    const pieces: string[] = [];
    const take = () => {
      for (let x = s.next(); x !== null; x = s.next()) pieces.push(x);
    };
    for (const [text, flush] of parts) {
      s.push(text);
      if (flush) s.flush();
      take();
    }
    s.end();
    take();
    expect(s.done).toBe(true);
    for (const p of pieces) expect(p.length).toBeLessThanOrEqual(max);
    const squash = (t: string) => t.replace(/\s+/gu, '');
    expect(squash(pieces.join(''))).toBe(squash(parts.map(([t]) => t).join('')));
  });
});

describe('SentenceSplitter packing', () => {
  it('joins complete sentences up to the limit when asked, never beyond it', async () => {
    const { SentenceSplitter } = await import('../../src/text/sentenceSplitter.js');
    const s = new SentenceSplitter(30);
    s.push('One. Two is here. Three comes next. Four.');
    s.end();
    expect(s.next()).toBe('One.');
    const packed = s.next(30)!;
    expect(packed).toBe('Two is here. Three comes next.');
    expect(packed.length).toBeLessThanOrEqual(30);
    expect(s.next(30)).toBe('Four.');
    expect(s.next(30)).toBeNull();
  });

  it('joins a piece shorter than packWhileUnder with what follows, up to the provider limit only', async () => {
    const { SentenceSplitter } = await import('../../src/text/sentenceSplitter.js');
    const s = new SentenceSplitter(40);
    s.push('Sure. Ok. Here is a longer sentence now. And a last one.');
    s.end();
    // "Sure." and "Ok." are under 12 characters together, so the next sentence joins too; then
    // the piece is long enough and the last sentence waits for its own request.
    expect(s.next(0, 12)).toBe('Sure. Ok. Here is a longer sentence now.');
    expect(s.next(0, 12)).toBe('And a last one.');
    const capped = new SentenceSplitter(20);
    capped.push('Hi. This sentence is far too long to join.');
    capped.end();
    expect(capped.next(0, 12)).toBe('Hi.');
  });
});
