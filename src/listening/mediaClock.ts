// The input media clock: milliseconds of microphone audio received, advanced by the host as
// it feeds VAD frames. An XState clock (setTimeout/clearTimeout), so the listener's `after`
// timers count input audio, not wall time. Timers fire in due order, each with `now()` at its
// own due time, so a timer's action reads the exact media position it was set for.
/** XState's clock interface (setTimeout/clearTimeout), which the package does not export. */
export interface Clock {
  setTimeout(fn: (...args: any[]) => void, timeout: number): any;
  clearTimeout(id: any): void;
}

interface Timer {
  id: number;
  due: number;
  fn: () => void;
}

export class MediaClock implements Clock {
  private position = 0;
  private nextId = 1;
  /** Few at a time (a listener holds at most three timers): a linear scan beats a heap here. */
  private readonly timers: Timer[] = [];

  now(): number {
    return this.position;
  }

  /** Timers not yet fired (for leak checks). */
  get pending(): number {
    return this.timers.length;
  }

  setTimeout(fn: (...args: unknown[]) => void, timeout: number): number {
    const id = this.nextId++;
    this.timers.push({ id, due: this.position + Math.max(0, timeout), fn: fn as () => void });
    return id;
  }

  clearTimeout(id: unknown): void {
    const i = this.timers.findIndex((t) => t.id === id);
    if (i >= 0) this.timers.splice(i, 1);
  }

  /** Move forward by `ms` of audio, firing every timer due on the way, earliest first. */
  advance(ms: number): void {
    const target = this.position + ms;
    for (;;) {
      let next = -1;
      for (let i = 0; i < this.timers.length; i++) {
        const t = this.timers[i]!;
        if (t.due <= target && (next < 0 || t.due < this.timers[next]!.due)) next = i;
      }
      if (next < 0) break;
      const [timer] = this.timers.splice(next, 1);
      this.position = Math.max(this.position, timer!.due);
      timer!.fn();
    }
    this.position = target;
  }

  /** Drop every timer (the listener stopped). */
  clear(): void {
    this.timers.length = 0;
  }
}
