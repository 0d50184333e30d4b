// What every upstream TTS implements. One call synthesizes one text piece; the session
// engine splits utterances into pieces, keeps them in order, and owns cancellation.
import type { ErrorCode, VoiceInfo } from '../../machines/types.js';

export interface PcmBlock {
  /** Signed 16-bit mono samples. */
  samples: Int16Array;
  sampleRate: number;
}

export interface SynthesisRequest {
  text: string;
  /** The provider's own voice name. */
  voice: string;
  /** Aborted when the utterance is stopped or superseded: stop work, release what you hold. */
  signal: AbortSignal;
  /**
   * The piece continues an utterance whose audio already started. A provider with a bounded
   * queue of its own (the embedded voice's worker pool) never refuses such a piece for load; it
   * refuses only pieces that would start an utterance.
   */
  continuation?: boolean;
  /**
   * Providers with a queue of their own call this with true when the request has to wait for
   * a free slot, and with false once it got one. Waiting one's turn is not a stalled upstream.
   */
  onQueued?: (queued: boolean) => void;
  /**
   * In a cluster, the job's identity (session, stream and piece): a gateway that takes a session
   * over asks for the same job and reads its audio again rather than synthesizing it anew.
   * `fence`: the session record's owner number, which a cancel of the job must still hold.
   */
  job?: { key: string; fence?: JobFence };
}

/** A session record and the owner number (epoch) that fences writes to it. */
export interface JobFence {
  key: string;
  epoch: number;
}

/**
 * One utterance's text going into a provider that keeps context across text pieces
 * (ElevenLabs: one context per utterance). Writes never block; `audio` ends after the
 * provider's own end marker for the text, throws a ProviderError on failure, and simply
 * returns once the request's signal is aborted.
 */
export interface TextStream {
  /** More text (whole sentences or clauses, in order). */
  write(text: string): void;
  /** Speak what was written so far; more text may follow later. */
  flush(): void;
  /** No more text: speak the rest and end the audio. */
  end(): void;
  readonly audio: AsyncIterable<PcmBlock>;
  /** Let go of the upstream context now. Idempotent. */
  close(): void;
}

export interface TtsProvider {
  readonly name: string;
  readonly voices: VoiceInfo[];
  /** The largest text piece one synthesize() call accepts. */
  readonly maxPieceChars: number;
  /**
   * Yield PCM as it is made. Ending the iteration (return or abort) must release every
   * resource of this call before the returned promise of `return()` settles.
   */
  synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock>;
  /**
   * Providers that keep one upstream context per utterance offer this; the engine then
   * streams the utterance's text into it instead of calling `synthesize` per piece.
   */
  openTextStream?(request: Omit<SynthesisRequest, 'text'>): TextStream;
  /** Resolves when the provider can take requests (e.g. workers warm). */
  ready(): Promise<void>;
  isReady(): boolean;
  /** Release everything. Idempotent. */
  close(): Promise<void>;
  /** Optional worker-pool figures for metrics (the embedded voice has them). */
  poolStats?(): { size: number; warm: number; busy: number; waiting: number; restarts: number; bufferedBytes?: number; refusedBusy?: number };
}

/** A typed provider failure the engine maps onto a speak.end error. */
export class ProviderError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}
