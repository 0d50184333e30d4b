// Per-provider protection against an upstream that keeps failing: a circuit breaker
// (cockatiel) over whole provider calls, and a gate that honours a 429's retry-after.
// While either is closed to traffic, calls fail at once with a typed ProviderError
// instead of adding load to an upstream that cannot take it. No retries happen here:
// a retry could resurrect a stopped utterance, so the engine never retries blindly.
import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import { ProviderError } from './types.js';

export type CircuitStateName = 'closed' | 'open' | 'half-open';

export interface ProviderGuardOptions {
  /** Consecutive upstream failures that open the circuit (default 5). */
  failureThreshold?: number;
  /** How long the circuit stays open before one trial call is let through (default 10 s). */
  halfOpenAfterMs?: number;
  /** Called when the circuit changes state (for logs and metrics). */
  onStateChange?: (state: CircuitStateName) => void;
}

/**
 * Thrown inside the breaker for outcomes that must count neither way (aborts, auth, bad input).
 * One shared instance: only the breaker's filter sees it, and a new Error per stopped utterance
 * would capture a stack trace each time.
 */
const notCounted = new Error('not counted');

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
   * Admit one provider call, or refuse it at once with a typed ProviderError (retry-after gate
   * closed, circuit open, or half-open with its one trial call in flight: never queued). The
   * ticket says how the call went.
   */
  private admit(): GuardedCall {
    const waitMs = this.blockedUntil - Date.now();
    if (waitMs > 0) {
      throw new ProviderError('rate_limited', `${this.provider} asked to wait; retry in ${Math.ceil(waitMs / 1000)} s`, waitMs);
    }
    let settle!: (error?: unknown) => void;
    let settled = false;
    const outcome = new Promise<void>((resolve, reject) => {
      settle = (error) => {
        if (settled) return;
        settled = true;
        if (error === undefined) resolve();
        else reject(error);
      };
    });
    let admitted = false;
    let refused = false;
    const verdict = this.breaker.execute(() => {
      if (refused) throw notCounted;
      admitted = true;
      return outcome;
    });
    verdict.catch(() => {}); // the outcome is reported through the ticket; this only feeds the breaker
    if (!admitted) {
      // If the breaker later invokes this call, it is refused there too.
      refused = true;
      throw new ProviderError('provider_unavailable', `${this.provider} is failing; its circuit breaker is open`);
    }
    return {
      succeeded: () => settle(),
      failed: (error, aborted) => {
        if (error instanceof ProviderError && error.code === 'rate_limited' && error.retryAfterMs) {
          this.blockedUntil = Math.max(this.blockedUntil, Date.now() + error.retryAfterMs);
        }
        settle(aborted || !counted(error) ? notCounted : error);
      },
      abandoned: () => {
        if (!settled) settle(notCounted);
      },
    };
  }

  /**
   * Run `call` (one whole provider call, its audio included) once admitted: a success when it
   * returns without an abort, a failure when it throws `provider_unavailable`; an abort counts
   * neither way. Rethrows. The guard wraps the call, not its audio: blocks go from the provider
   * to their consumer without passing through here.
   */
  async guard<T>(signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    const ticket = this.admit();
    try {
      const result = await call();
      if (signal.aborted) ticket.abandoned();
      else ticket.succeeded();
      return result;
    } catch (error) {
      ticket.failed(error, signal.aborted);
      throw error;
    } finally {
      ticket.abandoned(); // no-op once settled
    }
  }
}

/** How one admitted call went; the first report counts, later ones are ignored. */
interface GuardedCall {
  /** The audio ended normally. */
  succeeded(): void;
  /** The call threw; `aborted`: because its utterance let go (counts neither way). */
  failed(error: unknown, aborted: boolean): void;
  /** Ended early by its consumer: neither success nor failure. */
  abandoned(): void;
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
