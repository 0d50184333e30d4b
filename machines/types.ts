// Pure types shared by the statecharts and by src/. No runtime code, no I/O.

export type EndReason = 'completed' | 'stopped' | 'superseded' | 'failed' | 'timeout';

export type SpeakMode = 'interrupt' | 'enqueue';

/** Error codes a client can observe (wire contract v1 plus voxline's additions). */
export type ErrorCode =
  | 'bad_request'
  | 'unknown_type'
  | 'unauthorized'
  | 'rate_limited'
  | 'payload_too_large'
  | 'text_too_long'
  | 'duplicate_id'
  | 'provider_unavailable'
  | 'provider_auth'
  | 'provider_rejected'
  | 'provider_busy'
  | 'provider_timeout'
  | 'too_many_sessions'
  | 'too_many_connections'
  | 'forbidden_origin'
  | 'request_timeout'
  | 'internal'
  | 'unknown_voice'
  | 'queue_full'
  | 'handshake_timeout'
  | 'first_audio_timeout'
  | 'upstream_stalled'
  | 'utterance_timeout'
  | 'text_idle_timeout'
  | 'client_stalled'
  | 'shutting_down'
  | 'client_gone'
  // Listening (wire contract v2).
  | 'listen_unavailable'
  | 'bad_audio'
  | 'audio_overrun'
  | 'recognizer_unavailable'
  | 'recognizer_busy'
  | 'recognizer_failed'
  | 'recognizer_timeout'
  // The agent turn (wire contract v2): the language model that writes replies.
  | 'model_unavailable'
  | 'model_busy'
  | 'model_failed'
  | 'model_timeout';

export interface WireError {
  code: ErrorCode;
  message: string;
  /** With `rate_limited`, `provider_busy` or `model_busy`: how long to wait before trying again. */
  retryAfterMs?: number;
}

/** The session statechart's state, named for people watching it. */
export type SessionPhase = 'handshake' | 'idle' | 'connecting' | 'streaming' | 'awaitingText' | 'paused' | 'stopping' | 'releasing' | 'ended';

export interface VoiceInfo {
  id: string;
  language: string;
  provider: string;
}

export interface AudioFormat {
  encoding: 'pcm_s16le';
  sampleRate: number;
  channels: 1;
}

export interface UtteranceStats {
  chunks: number;
  bytes: number;
  firstAudioMs: number | null;
  durationMs: number;
}

/** Control messages the server sends (JSON text frames). */
export type ServerMessage =
  | {
      type: 'session.ready';
      sessionId: string;
      protocol: 1;
      format: AudioFormat;
      voices: VoiceInfo[];
    }
  | { type: 'speak.accepted'; id: string; stream: number }
  /** Only to clients that asked with `observe: true`: the session statechart's state. */
  | { type: 'session.state'; state: SessionPhase; path: string }
  | {
      type: 'speak.end';
      id: string;
      stream: number;
      reason: EndReason;
      error?: WireError;
      stats: UtteranceStats;
    }
  | { type: 'error'; code: ErrorCode; message: string; id?: string }
  | { type: 'pong' };

/** A speak request after the codec validated its shape. */
export interface SpeakRequest {
  id: string;
  text: string;
  voice?: string;
  final: boolean;
  mode: SpeakMode;
}

/** Why an utterance ended, internally: the wire reason plus what caused it. */
export interface EndRecord {
  id: string;
  stream: number;
  reason: EndReason;
  error?: WireError;
  stats: UtteranceStats;
  /** Internal cause, for logs and metrics only (never on the wire). */
  cause: string;
}

export interface SessionLimits {
  handshakeTimeoutMs: number;
  firstAudioTimeoutMs: number;
  chunkGapTimeoutMs: number;
  utteranceTimeoutMs: number;
  textIdleTimeoutMs: number;
  /**
   * An open utterance's text that ends mid-sentence (no terminator and whitespace yet) is spoken
   * once no more text came for this long: a client that waits for audio before sending more
   * still hears it.
   */
  textQuietMs: number;
  releaseTimeoutMs: number;
  writeStallTimeoutMs: number;
  maxTextChars: number;
  maxQueued: number;
  /** How many past utterance ids are remembered for duplicate detection. */
  idMemory: number;
}

export const defaultSessionLimits: SessionLimits = {
  handshakeTimeoutMs: 5_000,
  firstAudioTimeoutMs: 10_000,
  chunkGapTimeoutMs: 10_000,
  utteranceTimeoutMs: 300_000,
  textIdleTimeoutMs: 30_000,
  textQuietMs: 750,
  releaseTimeoutMs: 2_000,
  writeStallTimeoutMs: 15_000,
  maxTextChars: 10_000,
  maxQueued: 16,
  idMemory: 1_024,
};

/**
 * The current utterance's direct audio path. While the session is in a state where a chunk
 * changes nothing but the tallies (streaming, flowing or paused), `pass` counts the chunk and
 * returns its seq, and the upstream writes it to the transport itself, skipping one event
 * through the machine per chunk. Otherwise it returns -1 and the chunk goes as UPSTREAM_AUDIO,
 * so the machine sees (and may refuse) every chunk that could change its state.
 */
export interface AudioLane {
  pass(pcm: Int16Array): number;
}

/** What the upstream (synthesis) actor is started with, one per utterance. */
export interface UpstreamInput {
  sessionId: string;
  /** This utterance's lane; closed for good once the utterance ends. */
  lane: AudioLane;
  id: string;
  stream: number;
  voice: string;
  text: string;
  final: boolean;
  sampleRate: number;
}

/** Commands the session sends to its upstream actor. */
export type UpstreamCommand =
  | { type: 'TEXT'; text: string; final: boolean }
  /** No more text came for a while: speak the text held for its sentence's end as it is. */
  | { type: 'FLUSH' }
  | { type: 'PAUSE' }
  | { type: 'RESUME' }
  | { type: 'CANCEL' };

/** Events the upstream actor reports back. Each carries its stream so stale ones are dropped. */
export type UpstreamEvent =
  | { type: 'UPSTREAM_AUDIO'; stream: number; pcm: Int16Array }
  | { type: 'UPSTREAM_AWAITING_TEXT'; stream: number }
  | { type: 'UPSTREAM_DONE'; stream: number }
  | { type: 'UPSTREAM_ERROR'; stream: number; reason: 'failed' | 'timeout'; error: WireError }
  | { type: 'UPSTREAM_RELEASED'; stream: number }
  /** After audio started: the next piece waits for a provider slot (busy worker pool). Not a stall. */
  | { type: 'UPSTREAM_QUEUED'; stream: number }
  /** …and got one: from here the chunk-gap clock runs again. */
  | { type: 'UPSTREAM_DEQUEUED'; stream: number };

type SpeakEvent = { type: 'SPEAK'; request: SpeakRequest };

/**
 * What the connection routes to its speaker unchanged: the client's speak and stop frames, and
 * the socket's backpressure (CLIENT_DRAINED also comes from the speaker's own drain watcher).
 */
export type SpeakerCommand =
  | SpeakEvent
  | { type: 'STOP'; id?: string }
  | { type: 'CLIENT_BACKPRESSURE' }
  | { type: 'CLIENT_DRAINED' };

/** Why a speaker is told to finish: everything it holds ends at once. */
export type SpeakerFinish = { type: 'CLIENT_GONE' } | { type: 'SHUTDOWN' };

/** The connection chart's events: from the transport (socket side) and the engine. */
export type ConnectionEvent =
  | { type: 'START'; sampleRate: number; voice?: string }
  | { type: 'BAD_START'; code: ErrorCode; message: string }
  | SpeakerCommand
  | SpeakerFinish;

/** The speaker chart's events: routed by its connection, or reported by its upstream. */
export type SpeakerEvent = SpeakerCommand | SpeakerFinish | UpstreamEvent;

/** Why a speaker reached its end (its output): the connection closes accordingly. */
export type SpeakerEndCause = 'client_gone' | 'shutdown' | 'client_stalled';
