// The one error table: every code has its message and HTTP status, the codes that end a
// WebSocket connection have their close code, and the statuses are the ones clients know.
import { describe, expect, it } from 'vitest';
import { closeRequest, CloseCode, errorTable, handshakeRefusedReason, wireError } from '../../machines/errors.js';
import { httpStatus } from '../../src/protocol/httpStatus.js';
import type { ErrorCode } from '../../machines/types.js';

describe('error table', () => {
  it('gives every code a message and an HTTP status', () => {
    for (const [code, spec] of Object.entries(errorTable)) {
      expect(spec.message.length, code).toBeGreaterThan(0);
      expect(spec.http, code).toBeGreaterThanOrEqual(400);
      expect(httpStatus(code as ErrorCode)).toBe(spec.http);
    }
  });

  it('keeps the HTTP statuses of the speech endpoint', () => {
    const statuses: Partial<Record<ErrorCode, number>> = {
      bad_request: 400, text_too_long: 400, unknown_voice: 400, duplicate_id: 400, unauthorized: 401,
      forbidden_origin: 403, request_timeout: 408, payload_too_large: 413, rate_limited: 429, queue_full: 429,
      too_many_sessions: 429, too_many_connections: 429, provider_auth: 502, provider_rejected: 502,
      provider_unavailable: 503, provider_busy: 503, shutting_down: 503, first_audio_timeout: 504,
      upstream_stalled: 504, utterance_timeout: 504, provider_timeout: 504, internal: 500, client_stalled: 500,
    };
    for (const [code, status] of Object.entries(statuses)) expect(httpStatus(code as ErrorCode), code).toBe(status);
  });

  it('closes with the contract codes and carries the error code, not only a reason text', () => {
    expect(closeRequest('shutting_down')).toEqual({ code: 1001, reason: 'server shutting down', error: 'shutting_down' });
    expect(closeRequest('handshake_timeout')).toEqual({ code: 1008, reason: 'handshake_timeout', error: 'handshake_timeout' });
    expect(closeRequest('client_stalled')).toMatchObject({ code: 1008, error: 'client_stalled' });
    expect(closeRequest('internal')).toMatchObject({ code: CloseCode.internalError, error: 'internal' });
    expect(closeRequest('unauthorized', handshakeRefusedReason)).toEqual({ code: 1008, reason: 'session.start expected', error: 'unauthorized' });
    expect(wireError('client_stalled')).toEqual({ code: 'client_stalled', message: 'the client stopped reading audio' });
  });
});
