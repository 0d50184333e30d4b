// Streaming sample-rate conversion with libsamplerate (WASM port), Int16 in and out.
import libsamplerate from '@alexanderolsen/libsamplerate-js';
import { concatInt16, float32ToInt16, int16ToFloat32 } from './pcm.js';

const { create, ConverterType } = libsamplerate;

type Src = Awaited<ReturnType<typeof create>>;

/**
 * Converters at rest, by rate pair. libsamplerate-js builds a whole WASM instance per
 * `create()`, synchronously (~100 ms of held event loop on these machines, and tens of MB),
 * so a converter is reset and reused instead of made per utterance. Bounded per pair.
 */
const idle = new Map<string, Src[]>();
const maxIdlePerPair = 4;
const pairKey = (fromRate: number, toRate: number) => `${fromRate}>${toRate}`;

export class StreamResampler {
  private inFrames = 0;
  private outFrames = 0;
  private destroyed = false;

  private constructor(
    private readonly src: Src,
    readonly fromRate: number,
    readonly toRate: number,
  ) {}

  static async create(fromRate: number, toRate: number): Promise<StreamResampler> {
    const reused = idle.get(pairKey(fromRate, toRate))?.pop();
    if (reused) {
      // The library's rate setter re-initialises the converter: a fresh filter state, same rates.
      reused.inputSampleRate = fromRate;
      return new StreamResampler(reused, fromRate, toRate);
    }
    const src = await create(1, fromRate, toRate, { converterType: ConverterType.SRC_SINC_FASTEST });
    return new StreamResampler(src, fromRate, toRate);
  }

  process(pcm: Int16Array): Int16Array {
    if (this.destroyed) throw new Error('resampler already destroyed');
    if (pcm.length === 0) return new Int16Array(0);
    this.inFrames += pcm.length;
    const out = float32ToInt16(this.src.full(int16ToFloat32(pcm)));
    this.outFrames += out.length;
    return out;
  }

  /** Push out what the filter still holds, so the output length matches the input duration. */
  flush(): Int16Array {
    if (this.destroyed) return new Int16Array(0);
    const expected = Math.round((this.inFrames * this.toRate) / this.fromRate);
    const parts: Int16Array[] = [];
    let missing = expected - this.outFrames;
    for (let guard = 0; missing > 0 && guard < 8; guard++) {
      const out = float32ToInt16(this.src.full(new Float32Array(256)));
      const take = out.subarray(0, Math.min(out.length, missing));
      parts.push(take);
      missing -= take.length;
      this.outFrames += take.length;
    }
    return concatInt16(parts);
  }

  /** Idempotent. The converter goes back to the pool of its rate pair (or is freed when that is full). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const key = pairKey(this.fromRate, this.toRate);
    const rest = idle.get(key) ?? [];
    if (rest.length >= maxIdlePerPair) {
      this.src.destroy();
      return;
    }
    rest.push(this.src);
    idle.set(key, rest);
  }
}
