// Audio handed from a producer (a synth worker, a WebSocket context) to the one
// consumer that plays it: items in order, then the end or the failure, and a way to wake
// the consumer so it can notice it was stopped.

export class BlockQueue<T> {
  private readonly items: T[] = [];
  private ended = false;
  private failure: unknown = null;
  private waiter: (() => void) | null = null;

  /** The producer is done (normally or with a failure). */
  get finished(): boolean {
    return this.ended;
  }

  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.wake();
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
}
