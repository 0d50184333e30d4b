// Microphone audio waiting for an asynchronous VAD's decisions (Silero: onnxruntime infers on a
// later turn of the event loop), and the listener events that arrived behind it. The listener
// host hands a frame's audio to the ring and the recognition job, and sends its VOICE event,
// only once the frame's decision is back; an event (COMMIT, ASSISTANT_AUDIBLE) waits for the
// decisions of the complete frames that arrived before it. So the listener sees exactly what a
// synchronous VAD would have shown it, in the same order on the media clock, only later in wall
// time. Bounded by the host (`vadBacklogMs`): a frame that would queue past it is refused.

/** Positions are absolute sample counts since the session's first accepted sample. */
export class VadBacklog<E> {
  private readonly chunks: Int16Array[] = [];
  /** Samples of chunks[0] already taken. */
  private headOffset = 0;
  private readonly events: Array<{ at: number; event: E }> = [];
  /** Samples received (pushed) and released (taken) since the session started. */
  private received = 0;
  private released = 0;

  constructor(private readonly frameSamples: number) {}

  /** Samples received and not yet released. */
  get samples(): number {
    return this.received - this.released;
  }

  push(pcm: Int16Array): void {
    if (pcm.length === 0) return;
    this.chunks.push(pcm);
    this.received += pcm.length;
  }

  /**
   * `event` arrived now: it is due once the complete VAD frames received so far are released.
   * Returns true when it is due already (nothing complete waits) and was not queued.
   */
  queueOrPass(event: E): boolean {
    const at = Math.floor(this.received / this.frameSamples) * this.frameSamples;
    if (at <= this.released && this.events.length === 0) return true;
    this.events.push({ at, event });
    return false;
  }

  /** The next `count` samples, in order (a view when they sit in one chunk, else a copy). */
  take(count: number): Int16Array {
    const n = Math.min(count, this.samples);
    this.released += n;
    const first = this.chunks[0];
    if (first && first.length - this.headOffset >= n) {
      const out = first.subarray(this.headOffset, this.headOffset + n);
      this.advance(n);
      return out;
    }
    const out = new Int16Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const part = Math.min(n - filled, chunk.length - this.headOffset);
      out.set(chunk.subarray(this.headOffset, this.headOffset + part), filled);
      filled += part;
      this.advance(part);
    }
    return out;
  }

  /** The events now due (their audio released), oldest first. */
  due(): E[] {
    let n = 0;
    while (n < this.events.length && this.events[n]!.at <= this.released) n++;
    return n === 0 ? [] : this.events.splice(0, n).map((e) => e.event);
  }

  /** Drop everything (the session stopped listening). */
  clear(): void {
    this.chunks.length = 0;
    this.events.length = 0;
    this.headOffset = 0;
    this.released = this.received;
  }

  private advance(n: number): void {
    this.headOffset += n;
    while (this.chunks.length > 0 && this.headOffset >= this.chunks[0]!.length) {
      this.headOffset -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }
}
