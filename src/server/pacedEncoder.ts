// Encoding that never holds the event loop: PCM is queued and encoded in slices of a few
// milliseconds each, with the loop free between slices, however much audio arrives at once.
// What waits to be encoded counts as buffered output, so the session's backpressure pauses
// the provider while the encoder is behind: memory stays bounded too.

export interface BlockEncoder {
  /** Encode one block; may return nothing until it has a whole frame. */
  encode(pcm: Int16Array): Uint8Array;
  /** The encoder's tail, once, after the last block. */
  flush(): Uint8Array;
}

export class PacedEncoder {
  private readonly queue: Int16Array[] = [];
  private queuedBytes = 0;
  private scheduled = false;
  private closed = false;
  private ending: { resolve: () => void } | null = null;

  /**
   * `write` takes each encoded piece; `sliceMs` is how long one slice may keep the loop
   * (a slice always encodes at least one block).
   */
  constructor(
    private readonly encoder: BlockEncoder,
    private readonly write: (bytes: Uint8Array) => void,
    private readonly sliceMs = 4,
  ) {}

  /** Bytes of PCM waiting to be encoded. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  push(pcm: Int16Array): void {
    if (this.closed || this.ending) return;
    const copy = pcm.slice(); // the caller may reuse its buffer once this returns
    this.queue.push(copy);
    this.queuedBytes += copy.byteLength;
    this.schedule();
  }

  /** Encode what is queued, then the tail; resolves when all of it was written. */
  end(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ending = { resolve };
      this.schedule();
    });
  }

  /** Drop what is queued (the response is gone). Idempotent. */
  cancel(): void {
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.ending?.resolve();
    this.ending = null;
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => this.slice());
  }

  private slice(): void {
    this.scheduled = false;
    if (this.closed) return;
    const until = performance.now() + this.sliceMs;
    do {
      const pcm = this.queue.shift();
      if (!pcm) break;
      this.queuedBytes -= pcm.byteLength;
      this.emit(this.encoder.encode(pcm));
    } while (performance.now() < until);
    if (this.queue.length > 0) {
      this.schedule();
      return;
    }
    if (this.ending) {
      this.emit(this.encoder.flush());
      this.closed = true;
      this.ending.resolve();
      this.ending = null;
    }
  }

  private emit(bytes: Uint8Array): void {
    if (bytes.length > 0) this.write(bytes);
  }
}
