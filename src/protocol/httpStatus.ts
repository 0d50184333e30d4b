// The HTTP status of each wire error code (the error table's HTTP column), for the speech
// endpoint's JSON errors and the WebSocket upgrade's refusals.
import type { ErrorCode } from '../../machines/types.js';
import { errorTable } from '../../machines/errors.js';

/** The status a code answers with over HTTP (500 for codes that only mean "internal"). */
export function httpStatus(code: ErrorCode): number {
  return errorTable[code].http;
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
