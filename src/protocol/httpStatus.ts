// The HTTP status of each wire error code: one table for the speech endpoint's JSON errors
// and the WebSocket upgrade's refusals.
import type { ErrorCode } from '../../machines/types.js';

const httpStatusOf: Partial<Record<ErrorCode, number>> = {
  bad_request: 400,
  text_too_long: 400,
  unknown_voice: 400,
  duplicate_id: 400,
  unauthorized: 401,
  forbidden_origin: 403,
  request_timeout: 408,
  payload_too_large: 413,
  rate_limited: 429,
  queue_full: 429,
  too_many_sessions: 429,
  too_many_connections: 429,
  provider_auth: 502,
  provider_rejected: 502,
  provider_unavailable: 503,
  provider_busy: 503,
  shutting_down: 503,
  first_audio_timeout: 504,
  upstream_stalled: 504,
  utterance_timeout: 504,
  provider_timeout: 504,
};

/** The status a code answers with over HTTP (500 for codes that only mean "internal"). */
export function httpStatus(code: ErrorCode): number {
  return httpStatusOf[code] ?? 500;
}

const reasonPhrase: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/** A bare HTTP/1.1 status line with its phrase, for answering a raw socket (an upgrade). */
export function statusLine(status: number): string {
  return `${status} ${reasonPhrase[status] ?? 'Error'}`;
}
