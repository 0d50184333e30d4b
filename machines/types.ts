// Pure types shared by the statecharts and by src/. No runtime code, no I/O.

export type EndReason = 'completed' | 'stopped' | 'superseded' | 'failed' | 'timeout' | 'interrupted';

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
  | 'model_timeout'
  // Resuming a session (wire contract v2).
  | 'resume_failed';

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
      /** 1 unless the client asked for a version 2 feature (listen, agent). */
      protocol: 1 | 2;
      format: AudioFormat;
      voices: VoiceInfo[];
      /** Present when the session listens: the microphone format the server takes. */
      listen?: { format: ListenFormat };
      /** Present when the session may be resumed (the client asked with session.start `resume: true`). */
      resume?: ResumeOffer;
      /** The answer to session.resume: the same session, going on. */
      resumed?: true;
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
  | { type: 'pong' }
  /** A draining server, before it closes a resumable session's connection with 1012: resume elsewhere. */
  | { type: 'session.goaway'; timeLeftMs: number }
  // Listening (wire contract v2): positions on the input's media clock (audio received).
  | { type: 'input.speech_started'; turn: string; audioMs: number }
  | { type: 'input.speech_stopped'; turn: string; audioMs: number }
  | { type: 'transcript'; turn: string; text: string; final: boolean }
  // The agent turn (wire contract v2).
  | { type: 'reply.text'; turn: string; text: string }
  | { type: 'turn.end'; turn: string; status: TurnStatus; heard: string; error?: WireError };

/** How an agent turn ended (wire `turn.end.status`). */
export type TurnStatus = 'completed' | 'interrupted' | 'empty' | 'superseded' | 'failed';

/** A speak request after the codec validated its shape. */
export interface SpeakRequest {
  id: string;
  text: string;
  voice?: string;
  final: boolean;
  mode: SpeakMode;
  /**
   * Never from the wire: an utterance a gateway took over from a dead one keeps the stream its
   * first gateway gave it (the client knows it by that number).
   */
  stream?: number;
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
  /**
   * Non-space characters of its text the user heard at most (never on the wire): whole pieces
   * played, plus the played share of a piece whose audio was all sent (UtteranceOutlet.heardChars).
   */
  heardChars: number;
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
  /**
   * After a completed utterance, the assistant counts as audible (for the listener's echo guard)
   * while the client plausibly still plays what it was sent, but never longer than this.
   */
  audibleTailMaxMs: number;
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
  audibleTailMaxMs: 60_000,
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
  /** The audio from here on speaks a piece of the text with this many non-space characters. */
  startPiece(chars: number): void;
  /** All audio of the piece started last was passed or sent. */
  endPiece(): void;
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
  /** `released`: sent after the upstream let go of its provider (nothing left to wait for). */
  | { type: 'UPSTREAM_DONE'; stream: number; released?: boolean }
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
  | { type: 'CLIENT_DRAINED' }
  /** The client's report of how much of a stream it has played (wire `playback`). */
  | { type: 'PLAYBACK'; stream: number; playedMs: number };

/** Barge-in: the user spoke over the assistant. Ends what plays and what waits (`interrupted`). */
export type SpeakerInterrupt = { type: 'INTERRUPT' };

/** Why a speaker is told to finish: everything it holds ends at once. */
export type SpeakerFinish = { type: 'CLIENT_GONE' } | { type: 'SHUTDOWN' };

/** The connection chart's events: from the transport (socket side), the engine and its children. */
export type ConnectionEvent =
  | {
      type: 'START';
      sampleRate: number;
      voice?: string;
      /** Present when the client asked to listen: the engine's verdict (the chart stays pure). */
      listen?: ListenVerdict;
      /** Present when the client asked for the agent turn (and its listen request was granted). */
      agent?: AgentSettings;
      /** Present when the client asked to be able to resume: the engine's offer (token made outside the chart). */
      resume?: ResumeOffer;
    }
  | { type: 'BAD_START'; code: ErrorCode; message: string }
  | SpeakerCommand
  | SpeakerFinish
  /** One binary frame of microphone audio, as the client sent it (the mic gate checks it). */
  | { type: 'MIC_AUDIO'; payload: Uint8Array }
  /** The client's `input.commit`: end the user's current speech now. */
  | { type: 'COMMIT' }
  /** From the listener: the user spoke over the assistant. */
  | { type: 'BARGE_IN' }
  /** From the speaker: whether an utterance of the assistant is audible now. */
  | AssistantAudible
  /** From the listener host: where a user turn starts and what was heard in it. */
  | UserTurnEvent
  /** From the speaker: an utterance ended (routed to the turn). */
  | UtteranceEnded
  /** From the turn: what the speaker is to say, or stop saying, of a reply. */
  | ReplyOrder
  /** A resumable session's connection dropped: it goes on, detached, for the resume window. */
  | { type: 'DETACH' }
  /** A client resumed the detached session (its missed frames were replayed first). */
  | { type: 'ATTACH' };

/** What session.ready offers a client that asked to be able to resume. */
export interface ResumeOffer {
  token: string;
  windowMs: number;
}

/** The speaker's report of every utterance's end, to its parent. */
export type UtteranceEnded = {
  type: 'UTTERANCE_ENDED';
  id: string;
  stream: number;
  reason: EndReason;
  error?: WireError;
  /** Non-space characters of its text heard at most (EndRecord.heardChars). */
  heardChars: number;
};

/** What the listener host tells the connection of each user turn (for the agent turn). */
export type UserTurnEvent =
  | { type: 'USER_TURN_STARTED'; turn: string }
  /** The turn's one final transcript; `error` when recognition failed (text then empty). */
  | { type: 'USER_TURN_HEARD'; turn: string; text: string; error?: WireError };

/** The turn's orders for the speaker, through the connection. */
export type ReplyOrder =
  | { type: 'REPLY_SPEAK'; request: SpeakRequest }
  /** The user's words cut the reply short: ends it as a barge-in does (`interrupted`). */
  | { type: 'REPLY_INTERRUPT' }
  /** The reply cannot go on (its model failed): ends it as a stop does. */
  | { type: 'REPLY_STOP'; id: string };

/** The agent of a session (wire `session.start.agent`), validated. */
export interface AgentSettings {
  instructions?: string;
  voice?: string;
}

/** What the reply (language model) actor reports to the turn. */
export type ReplyEvent =
  | { type: 'REPLY_DELTA'; text: string }
  | { type: 'REPLY_DONE' }
  | { type: 'REPLY_ERROR'; error: WireError };

/** The turn chart's events: from the connection (client, listener, speaker) and its reply actor. */
export type TurnEvent =
  | UserTurnEvent
  | UtteranceEnded
  | ReplyEvent
  | { type: 'STOP'; id?: string }
  | { type: 'SHUTDOWN' };

/**
 * The speaker's own report: an utterance is audible from its first audio frame until its end.
 * The end of a `completed` utterance carries its `tail`: the client still plays what it was sent.
 */
export type AssistantAudible = { type: 'ASSISTANT_AUDIBLE'; audible: boolean; tail?: AudibleTail };

/** What a completed utterance's client still plays after its end (wall time, the session's clock). */
export interface AudibleTail {
  stream: number;
  /** Milliseconds of audio sent for the stream (whole ms, rounded down). */
  sentMs: number;
  /** How much longer it plausibly plays: the sent duration since its first audio went out, less the time since. */
  playsForMs: number;
}

/** The speaker chart's events: routed by its connection, or reported by its upstream. */
export type SpeakerEvent = SpeakerCommand | SpeakerInterrupt | SpeakerFinish | UpstreamEvent;

// ---------------------------------------------------------------------------------------------
// Listening (wire contract v2)

/** The microphone format of a listening session. */
export interface ListenFormat {
  encoding: 'pcm_s16le' | 'opus';
  sampleRate: number;
}

/** What the client asked for in `session.start.listen`, after validation and defaults. */
export interface ListenRequest {
  /** The format the client would like to send; the server answers with the one it takes. */
  format?: ListenFormat;
  language: string;
  phrases?: readonly string[];
  interruptions: boolean;
}

/** The engine's answer to a listen request, carried by START so the connection chart stays pure. */
export type ListenVerdict = ListenGrant | { granted: false };

export interface ListenGrant {
  granted: true;
  /** The format the server takes (in session.ready). */
  format: ListenFormat;
  language: string;
  phrases?: readonly string[];
  interruptions: boolean;
  /** Which recognizer hears this session (its `name`). */
  recognizer: string;
}

/**
 * Every limit of the listener, in milliseconds of input audio (the media clock) unless it
 * says wall time. One object, with defaults; the engine takes a partial.
 */
export interface ListenLimits {
  /** Speech must last this long from its onset to make a turn (shorter: noise, no turn). */
  minSpeechMs: number;
  /** Before the turn is confirmed, a silence longer than this drops the candidate. */
  onsetGapMs: number;
  /** In a turn, silence this long ends the user's speech (endpointing). */
  endpointSilenceMs: number;
  /** A turn's speech is ended after this long from its onset, whatever the VAD says. */
  maxTurnMs: number;
  /** After the speech ended, the recognizer's final must come within this much input audio… */
  recognitionResultMs: number;
  /** …and within this much wall time (a client may stop sending audio): else recognizer_timeout. */
  recognitionWallMs: number;
  /** Barge-in: user speech must have lasted this long from its onset while the assistant is audible. */
  interruptSpeechMs: number;
  /** Echo guard: while the assistant is audible, a frame is speech only at or above this level (dBFS)… */
  echoGuardLevelDb: number;
  /** …and barge-in waits this much longer (the speech could be the assistant's own echo). */
  echoGuardExtraMs: number;
  /** Audio from before the onset given to the turn's recognition job. */
  preRollMs: number;
}

export const defaultListenLimits: ListenLimits = {
  minSpeechMs: 250,
  onsetGapMs: 150,
  endpointSilenceMs: 700,
  maxTurnMs: 30_000,
  recognitionResultMs: 10_000,
  recognitionWallMs: 10_000,
  interruptSpeechMs: 400,
  echoGuardLevelDb: -30, // echo at -20 dB measured p95 -34 dBFS; a talker p50 -24.5 (docs/listening.md)
  echoGuardExtraMs: 200,
  preRollMs: 300,
};

/** One VAD decision, sent to the listener at the frame's start on the media clock. */
export type VoiceEvent = { type: 'VOICE'; speech: boolean; levelDb: number; durationMs: number };

/** What a turn's recognition job reports back to the listener. */
export type RecognitionEvent =
  | { type: 'RECOGNITION_PARTIAL'; text: string }
  | { type: 'RECOGNITION_FINAL'; text: string }
  | { type: 'RECOGNITION_ERROR'; code: ErrorCode; message: string };

/** What the listener tells its recognition job. */
export type RecognitionCommand = { type: 'FINISH' };

/** The listener chart's events: from its host (VAD frames, client, speaker) and its recognition job. */
export type ListenerEvent =
  | VoiceEvent
  | { type: 'COMMIT' }
  | AssistantAudible
  /** The session ends for shutdown: a turn in progress gets its final transcript, then the listener stops. */
  | { type: 'SHUTDOWN' }
  | RecognitionEvent;

/** What the listener reports outward through its one `report` action. */
export type ListenerReport =
  | Extract<ServerMessage, { type: 'input.speech_started' | 'input.speech_stopped' | 'transcript' | 'error' }>
  | { type: 'BARGE_IN'; turn: string };

/** Why a speaker reached its end (its output): the connection closes accordingly. */
export type SpeakerEndCause = 'client_gone' | 'shutdown' | 'client_stalled';
