// Cuts a stream of PCM into wire frames of a fixed duration (the last one may be shorter).
import { allocInt16 } from './pcm.js';

export class PcmChunker {
  private pending: Int16Array;
  private filled = 0;

  constructor(readonly frameSamples: number) {
    if (!Number.isInteger(frameSamples) || frameSamples <= 0) throw new RangeError('frameSamples must be a positive integer');
    this.pending = allocInt16(frameSamples);
  }

  /** Append samples; returns every frame that became complete. */
  push(pcm: Int16Array): Int16Array[] {
    const frames: Int16Array[] = [];
    let offset = 0;
    while (offset < pcm.length) {
      const take = Math.min(this.frameSamples - this.filled, pcm.length - offset);
      this.pending.set(take === pcm.length ? pcm : pcm.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === this.frameSamples) {
        frames.push(this.pending);
        this.pending = allocInt16(this.frameSamples);
        this.filled = 0;
      }
    }
    return frames;
  }

  /** The partial frame, if any (used when the stream ends or pauses for text). */
  flush(): Int16Array | null {
    if (this.filled === 0) return null;
    const out = this.pending.slice(0, this.filled);
    this.filled = 0;
    return out;
  }
}
