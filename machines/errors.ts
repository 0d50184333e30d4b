// The one table of wire errors: for each code its default message, its HTTP status (speech
// endpoint, refused upgrades) and, for the codes that end a connection, its WebSocket close
// code. Pure data: machines/ and src/ both read it, it imports nothing with I/O.
import type { ErrorCode, WireError } from './types.js';

/** WebSocket close codes the server uses (RFC 6455, section 7.4.1). */
export const CloseCode = {
  /** The session ended and nothing went wrong. */
  normal: 1000,
  /** The server is going away (shutdown). */
  goingAway: 1001,
  /** The client broke a rule (handshake, auth, flooding, not reading). */
  policyViolation: 1008,
  /** The server failed in a way it did not expect. */
  internalError: 1011,
  /** The server is draining: a resumable session's client resumes elsewhere (wire contract v2). */
  serviceRestart: 1012,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export interface ErrorSpec {
  /** Sent when the situation has nothing more specific to say. */
  message: string;
  /** HTTP status when the error answers a request. */
  http: number;
  /** Close code when this error ends a WebSocket connection. */
  close?: CloseCode;
  /** Close reason, when it is not the code itself. */
  closeReason?: string;
}

export const errorTable: Readonly<Record<ErrorCode, ErrorSpec>> = {
  bad_request: { message: 'the first frame must be session.start', http: 400, close: CloseCode.policyViolation },
  unknown_type: { message: 'unknown message type', http: 500, close: CloseCode.policyViolation },
  unauthorized: { message: 'a valid token is required in session.start', http: 401, close: CloseCode.policyViolation },
  forbidden_origin: { message: 'this Origin may not open sessions', http: 403 },
  request_timeout: { message: 'the request body did not arrive in time', http: 408 },
  payload_too_large: { message: 'the frame or body is too large', http: 413, close: CloseCode.policyViolation },
  text_too_long: { message: 'the utterance holds too many characters', http: 400 },
  unknown_voice: { message: 'unknown voice', http: 400 },
  duplicate_id: { message: 'utterance id already used in this session', http: 400 },
  rate_limited: { message: 'too many frames; closing', http: 429, close: CloseCode.policyViolation },
  queue_full: { message: 'too many utterances wait in the queue', http: 429 },
  too_many_sessions: { message: 'this key has too many open sessions', http: 429, close: CloseCode.policyViolation },
  too_many_connections: { message: 'too many connections from this address', http: 429 },
  provider_auth: { message: 'the provider refused our credentials', http: 502 },
  provider_rejected: { message: 'the provider rejected the request', http: 502 },
  provider_unavailable: { message: 'the provider is unavailable', http: 503 },
  provider_busy: { message: 'the provider is busy; try again later', http: 503 },
  provider_timeout: { message: 'the provider did not answer in time', http: 504 },
  handshake_timeout: { message: 'no session.start in time', http: 500, close: CloseCode.policyViolation },
  first_audio_timeout: { message: 'the provider sent no audio in time', http: 504 },
  upstream_stalled: { message: 'the provider stopped sending audio', http: 504 },
  utterance_timeout: { message: 'the utterance ran past its overall time limit', http: 504 },
  text_idle_timeout: { message: 'no more text arrived for an open utterance', http: 500 },
  client_stalled: { message: 'the client stopped reading audio', http: 500, close: CloseCode.policyViolation },
  shutting_down: { message: 'the server is shutting down', http: 503, close: CloseCode.goingAway, closeReason: 'server shutting down' },
  client_gone: { message: 'the client went away', http: 500 },
  internal: { message: 'synthesis failed unexpectedly', http: 500, close: CloseCode.internalError },
  listen_unavailable: { message: 'this server cannot listen in that language; the session speaks only', http: 501 },
  bad_audio: { message: 'microphone frames must be 10-250 ms of the listen format, an even number of bytes', http: 400 },
  audio_overrun: { message: 'microphone audio arrives faster than real time; frame dropped', http: 429 },
  recognizer_unavailable: { message: 'speech recognition is unavailable', http: 503 },
  recognizer_busy: { message: 'speech recognition is busy; try again later', http: 503 },
  recognizer_failed: { message: 'speech recognition failed', http: 502 },
  recognizer_timeout: { message: 'speech recognition gave no result in time', http: 504 },
  model_unavailable: { message: 'the language model is unavailable (credentials or model name refused)', http: 503 },
  model_busy: { message: 'the language model is busy; try again later', http: 503 },
  model_failed: { message: 'the language model failed to write a reply', http: 502 },
  model_timeout: { message: 'the language model did not answer in time', http: 504 },
  resume_failed: { message: 'this session cannot be resumed; start a new one', http: 409, close: CloseCode.policyViolation },
};

/** The close reason of a refused handshake, whatever the code of the refusal. */
export const handshakeRefusedReason = 'session.start expected';

/** A wire error with the table's message unless the situation gives a better one. */
export function wireError(code: ErrorCode, message: string = errorTable[code].message): WireError {
  return { code, message };
}

/** How a connection is closed, and which error closed it (transports map it, never the reason text). */
export interface CloseRequest {
  code: number;
  reason: string;
  error: ErrorCode;
}

/** The close for `error` (1008 for a code with no close of its own: the client broke a rule). */
export function closeRequest(error: ErrorCode, reason?: string): CloseRequest {
  const spec = errorTable[error];
  return { code: spec.close ?? CloseCode.policyViolation, reason: reason ?? spec.closeReason ?? error, error };
}
