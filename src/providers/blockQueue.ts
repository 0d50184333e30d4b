// Audio handed from a producer (a synth worker, a WebSocket context) to the one
// consumer that plays it: items in order, then the end or the failure, and a way to wake
// the consumer so it can notice it was stopped. With a bound, it also tells the producer
// when to stop (it holds more than the bound) and when to go on (the consumer took it back
// to half): the queue holds at most the bound plus what the producer had in hand.

export interface BlockQueueBound<T> {
  /** The bytes an item holds. */
  sizeOf: (item: T) => number;
  /** Holding more than this many bytes, the queue is full: `push` returns false. */
  maxBytes: number;
  /** The consumer took a full queue back to half its bound (or cleared it): the producer may go on. */
  onDrained: () => void;
}

export class BlockQueue<T> {
  private readonly items: T[] = [];
  private ended = false;
  private failure: unknown = null;
  private waiter: (() => void) | null = null;
  private held = 0;
  private full = false;

  constructor(private readonly bound: BlockQueueBound<T> | null = null) {}

  /** The producer is done (normally or with a failure). */
  get finished(): boolean {
    return this.ended;
  }

  /** Bytes queued and not yet taken (0 without a bound: nothing to measure them with). */
  get bytes(): number {
    return this.held;
  }

  /** False once the queue holds more than its bound: the producer should stop until `onDrained`. */
  push(item: T): boolean {
    if (this.ended) return true;
    this.items.push(item);
    if (this.bound) {
      this.held += this.bound.sizeOf(item);
      if (this.held > this.bound.maxBytes) this.full = true;
    }
    this.wake();
    return !this.full;
  }

  /** No more items. With a failure, the consumer throws it once the queued items are taken. Idempotent. */
  finish(failure: unknown = null): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = failure;
    this.wake();
  }

  /** Drop what is queued and not yet taken. */
  clear(): void {
    this.items.length = 0;
    this.held = 0;
    this.releaseProducer();
  }

  /** Let a waiting consumer re-check its stop condition. */
  wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Items as they come; returns once `stopped()` or the end, throws the failure. */
  async *drain(stopped: () => boolean = () => false): AsyncGenerator<T> {
    for (;;) {
      if (stopped()) return;
      const item = this.items.shift();
      if (item !== undefined) {
        if (this.bound) {
          this.held -= this.bound.sizeOf(item);
          if (this.full && this.held <= this.bound.maxBytes / 2) this.releaseProducer();
        }
        yield item;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  private releaseProducer(): void {
    if (!this.full) return;
    this.full = false;
    this.bound?.onDrained();
  }
}
