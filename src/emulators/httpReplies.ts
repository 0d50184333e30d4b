// What the OpenAI-style emulators (Groq speech and transcription, chat completions) answer
// with: a JSON body, the services' error shape, and the fault control endpoint tests drive.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody } from '../server/readBody.js';
import type { FaultSchedule } from './faults.js';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** The `{ error: { message, type, code? } }` body the OpenAI-compatible APIs send. */
export function apiError(res: ServerResponse, status: number, message: string, type: string, code?: string): void {
  sendJson(res, status, { error: { message, type, ...(code ? { code } : {}) } });
}

/** POST body `{ push?: F[], always?: F | null, clear?: true }` applied to `faults`; 400 for anything malformed. */
export async function serveFaultControl<F extends string>(
  req: IncomingMessage,
  res: ServerResponse,
  faults: FaultSchedule<F>,
  isFault: (value: unknown) => value is F,
): Promise<void> {
  try {
    const body = JSON.parse(await readBody(req, 16 * 1024, 10_000)) as { push?: unknown[]; always?: unknown; clear?: boolean };
    if (body.clear) faults.clear();
    for (const f of body.push ?? []) if (isFault(f)) faults.push(f);
    if (body.always === null || isFault(body.always)) faults.always(body.always);
    sendJson(res, 200, { ok: true });
  } catch {
    sendJson(res, 400, { ok: false });
  }
}
