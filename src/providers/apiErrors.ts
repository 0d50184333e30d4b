// Reading what an HTTP API said when it refused a request, shared by every adapter built on
// an official SDK (Groq speech, the chat models): how long a 429 asks us to wait, and the
// API's own error message, bounded. Neither ever carries a credential: they read response
// headers and the error body only.

/** Milliseconds a 429 asks to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date). */
export function retryAfterMs(headers: Headers | undefined): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The API's message from an SDK error body (`{ error: { message } }` or `{ message }`), at most 200 characters. */
export function apiErrorMessage(body: unknown): string {
  const b = body as { error?: { message?: unknown }; message?: unknown } | undefined;
  const message = b?.error?.message ?? b?.message;
  return typeof message === 'string' ? message.slice(0, 200) : 'no detail';
}
