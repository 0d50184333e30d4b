// Where a listening client's playback is, as far as the server can tell: audio sent plays from
// when it arrives (or when what was before it ends), in real time. A session that listens is
// paced by it: the server stays at most a lead ahead of the client's playback, so an utterance
// is still playing on the server while the user hears it. Barge-in can then end it (the
// client drops only the lead it holds), and what the user heard is known to within the lead.
// A session that does not listen is not paced (wire contract v1: audio as fast as it comes).

export class PlayoutClock {
  /** performance.now() at which everything sent so far will have played. */
  private endsAt = 0;

  constructor(
    /** Most audio (ms) sent ahead of playback before the upstream is paused. */
    readonly leadMs: number,
    /** The session's output rate (samples a second). */
    private readonly sampleRate: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** `samples` more audio went out. */
  addSamples(samples: number): void {
    const now = this.now();
    this.endsAt = Math.max(this.endsAt, now) + (samples * 1000) / this.sampleRate;
  }

  /** Audio sent and not yet played, in ms. */
  aheadMs(): number {
    return Math.max(0, this.endsAt - this.now());
  }

  /** Over the lead: pause the upstream. */
  get full(): boolean {
    return this.aheadMs() > this.leadMs;
  }

  /** Back under half the lead: resume (hysteresis, so a paced stream does not flap per chunk). */
  get drained(): boolean {
    return this.aheadMs() <= this.leadMs / 2;
  }

  /** The client dropped what it had scheduled (an utterance interrupted or stopped). Idempotent. */
  reset(): void {
    this.endsAt = 0;
  }
}
