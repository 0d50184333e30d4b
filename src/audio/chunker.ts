// Cuts a stream of PCM into wire frames of a fixed duration (the last one may be shorter).
//
// The frame being filled lives in the chunker's own buffer, allocated once; a complete frame
// is copied out into pooled memory as it leaves. A partial frame waits tens of milliseconds
// (longer while the upstream waits for text), and a pool slice held that long keeps its whole
// 8 KiB slab alive: one per streaming session, most of the slab other sessions' frames long gone.
import { allocInt16 } from './pcm.js';

export class PcmChunker {
  private readonly pending: Int16Array;
  private filled = 0;

  constructor(readonly frameSamples: number) {
    if (!Number.isInteger(frameSamples) || frameSamples <= 0) throw new RangeError('frameSamples must be a positive integer');
    this.pending = new Int16Array(frameSamples);
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
        const frame = allocInt16(this.frameSamples);
        frame.set(this.pending);
        frames.push(frame);
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
