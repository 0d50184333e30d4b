// Faults an upstream emulator can be told to commit, one per request (Groq) or per
// context (ElevenLabs). Tests and benchmarks queue them; an empty queue means "behave".

export const upstreamFaults = [
  'premature_close', // the connection drops before any audio
  'no_final_marker', // audio, then a clean close without the end marker (chunked terminator / isFinal)
  'error_mid_stream', // audio, then an error (reset / error message)
  'stall_before_first_byte', // accepted, then nothing, forever
  'stall_mid_stream', // some audio, then nothing, forever
  'rate_limited', // 429 with retry-after / the service's rate-limit close
  'server_error', // 500 / close 1011
  'unauthorized', // 401 / the service's auth close
  'malformed', // not a WAV / not JSON, bad base64
  'huge_frame', // an absurd chunk size / a message far over any sane limit
  'slow_trickle', // correct audio, a few bytes at a time
] as const;

export type UpstreamFault = (typeof upstreamFaults)[number];

/** Faults of type F (the speech emulators' UpstreamFault unless an emulator has its own list, like the chat one). */
export class FaultSchedule<F extends string = UpstreamFault> {
  private readonly queue: F[] = [];
  private readonly marked = new Map<string, F>();
  private sticky: F | null = null;

  /**
   * The first request whose text contains `marker` commits `fault`. Unlike the queue this
   * does not depend on arrival order, which a cancelled request still in flight can change.
   */
  when(marker: string, fault: F): void {
    this.marked.set(marker, fault);
  }

  /** Faults for the next requests, in order. */
  push(...faults: F[]): void {
    this.queue.push(...faults);
  }

  /** A fault for every request until cleared (null). */
  always(fault: F | null): void {
    this.sticky = fault;
  }

  clear(): void {
    this.queue.length = 0;
    this.marked.clear();
    this.sticky = null;
  }

  /** The fault for a request carrying `text`, or null. */
  next(text = ''): F | null {
    for (const [marker, fault] of this.marked) {
      if (text.includes(marker)) {
        this.marked.delete(marker);
        return fault;
      }
    }
    return this.queue.shift() ?? this.sticky;
  }
}

export function isUpstreamFault(value: unknown): value is UpstreamFault {
  return typeof value === 'string' && (upstreamFaults as readonly string[]).includes(value);
}
