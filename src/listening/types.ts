// What every speech-to-text engine implements, and what voice activity detection gives the
// listener. The listener statechart (machines/listener.machine.ts) decides when a turn's
// recognition starts, finishes or is cancelled; a RecognitionJob only obeys.
import type { ErrorCode } from '../../machines/types.js';

/** The uplink's PCM after decoding: signed 16-bit mono at `listenSampleRate`. */
export const listenSampleRate = 16_000;

export interface RecognitionRequest {
  /** BCP-47-ish language the client asked for ('en', 'ar'); the engine checks `languages` first. */
  language: string;
  /** A closed set of expected phrases: a recognizer that can restrict itself to them should. */
  phrases?: readonly string[];
  /** Aborted when the turn's recognition is no longer wanted: stop work, release everything. */
  signal: AbortSignal;
  /** Partial hypotheses as they form (engines without partials never call it). */
  onPartial?: (text: string) => void;
}

/**
 * One turn's recognition. Audio is written as it arrives (16 kHz mono s16); `finish()` says no
 * more audio follows and resolves with the final text ('' when nothing was recognised), or
 * rejects with a RecognitionError. `cancel()` releases everything at once and is idempotent;
 * after it `finish()` rejects (or never settles its work) and no callback fires again.
 */
export interface RecognitionJob {
  write(pcm: Int16Array): void;
  finish(): Promise<string>;
  cancel(): void;
}

export interface SpeechRecognizer {
  /** 'pocketsphinx', 'groq', … */
  readonly name: string;
  /** Languages it can hear ('en', 'ar'). */
  readonly languages: readonly string[];
  /** Whether it sends partial transcripts. */
  readonly partials: boolean;
  /**
   * Whether it restricts itself to the request's `phrases` (a grammar, e.g. PocketSphinx with
   * JSGF) rather than taking them as hints: the engine prefers such a recognizer when a session
   * gives phrases, and a general one otherwise. Absent means false.
   */
  readonly restrictsToPhrases?: boolean;
  start(request: RecognitionRequest): RecognitionJob;
  /** Resolves when it can take jobs (e.g. its processes are warm). */
  ready(): Promise<void>;
  /** Release everything (processes, sockets). Idempotent. */
  close(): Promise<void>;
}

/** A typed recognition failure: the turn still gets its one final transcript (empty). */
export class RecognitionError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'RecognitionError';
  }
}

/** One voice-activity decision over a fixed frame of input audio. */
export interface VoiceFrame {
  /** Whether the detector heard speech in this frame. */
  speech: boolean;
  /** The frame's RMS level in dBFS (-100 for digital silence): the echo guard compares it. */
  levelDb: number;
  /** The frame's length in milliseconds of input audio (the media clock advances by it). */
  durationMs: number;
}

/**
 * Voice activity detection over a stream of 16 kHz mono PCM. `push` takes any number of
 * samples and returns one decision per complete frame (it keeps the remainder for the next
 * call). One detector per session; `close()` frees it and is idempotent.
 */
export interface VoiceActivityDetector {
  readonly frameMs: number;
  push(pcm: Int16Array): VoiceFrame[];
  reset(): void;
  close(): void;
}

/**
 * A detector that decides later in wall time (onnxruntime-node only infers asynchronously).
 * `push` queues samples and returns the decisions finished since the previous call; `drain`
 * resolves once every complete frame pushed so far is decided, with the decisions not yet handed
 * out. Each decision is handed out exactly once, in order, by one or the other. The listener host
 * holds the audio until its decision is back, so the media clock stays exact (listenerHost.ts).
 */
export interface AsyncVoiceActivityDetector extends VoiceActivityDetector {
  readonly decidesLater: true;
  drain(): Promise<VoiceFrame[]>;
}

export function decidesLater(vad: VoiceActivityDetector): vad is AsyncVoiceActivityDetector {
  return (vad as Partial<AsyncVoiceActivityDetector>).decidesLater === true;
}
