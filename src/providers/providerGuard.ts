// Per-provider protection against an upstream that keeps failing: a circuit breaker
// (cockatiel) over whole provider calls, and a gate that honours a 429's retry-after.
// While either is closed to traffic, calls fail at once with a typed ProviderError
// instead of adding load to an upstream that cannot take it. No retries happen here:
// a retry could resurrect a stopped utterance, so the engine never retries blindly.
import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { ProviderError, type PcmBlock } from './types.js';

export type CircuitStateName = 'closed' | 'open' | 'half-open';

export interface ProviderGuardOptions {
  /** Consecutive upstream failures that open the circuit (default 5). */
  failureThreshold?: number;
  /** How long the circuit stays open before one trial call is let through (default 10 s). */
  halfOpenAfterMs?: number;
  /** Called when the circuit changes state (for logs and metrics). */
  onStateChange?: (state: CircuitStateName) => void;
}

/** Thrown inside the breaker for outcomes that must count neither way (aborts, auth, bad input). */
class NotCounted extends Error {
  constructor(readonly original: unknown) {
    super('not counted');
  }
}

// Only failures of the upstream itself open the circuit; a bad key or a refused input
// would fail the same way every time and is reported as what it is.
const counted = (error: unknown): boolean => error instanceof ProviderError && error.code === 'provider_unavailable';

export class ProviderGuard {
  private readonly breaker: CircuitBreakerPolicy;
  private blockedUntil = 0;

  constructor(
    readonly provider: string,
    options: ProviderGuardOptions = {},
  ) {
    this.breaker = circuitBreaker(
      handleWhen(counted),
      { halfOpenAfter: options.halfOpenAfterMs ?? 10_000, breaker: new ConsecutiveBreaker(options.failureThreshold ?? 5) },
    );
    if (options.onStateChange) {
      const notify = options.onStateChange;
      this.breaker.onStateChange((state) => notify(stateName(state)));
    }
  }

  get state(): CircuitStateName {
    return stateName(this.breaker.state);
  }

  /**
   * Run one provider call, yielding its audio. The call counts as a success when its audio
   * ends normally and as a failure when it throws `provider_unavailable`; an abort counts
   * neither way.
   */
  async *run(start: () => AsyncIterable<PcmBlock>, signal: AbortSignal): AsyncGenerator<PcmBlock> {
    const waitMs = this.blockedUntil - Date.now();
    if (waitMs > 0) {
      throw new ProviderError('rate_limited', `${this.provider} asked to wait; retry in ${Math.ceil(waitMs / 1000)} s`, waitMs);
    }
    let settle!: (error?: unknown) => void;
    let settled = false;
    const outcome = new Promise<void>((resolve, reject) => {
      settle = (error) => {
        settled = true;
        if (error === undefined) resolve();
        else reject(error);
      };
    });
    let admitted = false;
    let refused = false;
    const verdict = this.breaker.execute(() => {
      if (refused) throw new NotCounted(null);
      admitted = true;
      return outcome;
    });
    verdict.catch(() => {}); // the outcome is reported through `settle`; this only feeds the breaker
    if (!admitted) {
      // Open, or half-open with its one trial call in flight: refuse at once, never queue.
      // If the breaker later invokes this call, it is refused there too.
      refused = true;
      throw new ProviderError('provider_unavailable', `${this.provider} is failing; its circuit breaker is open`);
    }
    try {
      for await (const block of start()) yield block;
      settle();
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'rate_limited' && error.retryAfterMs) {
        this.blockedUntil = Math.max(this.blockedUntil, Date.now() + error.retryAfterMs);
      }
      settle(signal.aborted || !counted(error) ? new NotCounted(error) : error);
      throw error;
    } finally {
      // Ended early by the consumer (return() on abort): neither success nor failure.
      if (!settled) settle(new NotCounted(null));
    }
  }
}

function stateName(state: CircuitState): CircuitStateName {
  switch (state) {
    case CircuitState.Open:
    case CircuitState.Isolated:
      return 'open';
    case CircuitState.HalfOpen:
      return 'half-open';
    default:
      return 'closed';
  }
}
