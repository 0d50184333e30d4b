// A local stand-in for an OpenAI-compatible chat-completions endpoint: a real HTTP server on
// 127.0.0.1 speaking `POST /v1/chat/completions` (the openai SDK's path) and
// `/openai/v1/chat/completions` (groq-sdk's), Bearer auth, the APIs' JSON error shape, and
// `stream: true` answered as server-sent events chunk by chunk like the real services, so the
// unmodified SDKs cannot tell. Replies come from a queue or a function the test sets (by
// default it echoes the last user message), paced token by token, with switchable faults.
// Independent of the Groq speech emulator; `handle()` lets another server mount the route.
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChatMessage } from '../agent/types.js';
import { BodyTooLargeError, readBody } from '../server/readBody.js';
import { FaultSchedule } from './faults.js';
import { apiError, sendJson, serveFaultControl } from './httpReplies.js';

export const chatFaults = [
  'slow_first_token', // headers at once, then the first text only after `slowFirstTokenMs`
  'stall_mid_stream', // some text, then nothing, the connection kept open
  'rate_limited', // 429 with retry-after
  'server_error', // 500
  'unauthorized', // 401, whatever the key
  'cut_stream', // some text, then the socket destroyed mid-body
  'malformed_chunk', // some text, then `data: {not json`, then a normal end
  'truncated', // some text, then a clean end of the body without finish_reason or [DONE]
  'endless', // text forever (paced at least 5 ms apart) until the client leaves
] as const;

export type ChatFault = (typeof chatFaults)[number];

export function isChatFault(value: unknown): value is ChatFault {
  return typeof value === 'string' && (chatFaults as readonly string[]).includes(value);
}

export interface ChatEmulatorOptions {
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Before the first text (the model "thinking"); default 0. */
  firstTokenDelayMs?: number;
  /** Between two texts; default 0 (each chunk still its own write, a turn of the event loop apart). */
  tokenDelayMs?: number;
  /** How late the first text comes under `slow_first_token` (default 30 s). */
  slowFirstTokenMs?: number;
  retryAfterSeconds?: number;
  /** Largest request body accepted (default 256 KiB): past it, 413. */
  maxBodyBytes?: number;
}

export interface ReplyContext {
  model: string;
  messages: ChatMessage[];
}

/** The reply for one request: a fixed text, or a function of the request. */
export type ReplySource = string | ((context: ReplyContext) => string);

export interface ChatEmulatorRequest {
  path: string;
  model: string;
  messages: ChatMessage[];
  stream: boolean;
  /** `max_completion_tokens` or `max_tokens`, whichever the client sent. */
  maxTokens?: number;
  temperature?: number;
  fault: ChatFault | null;
  /** The text sent so far. */
  sent: string;
  outcome: 'streaming' | 'completed' | 'aborted' | 'faulted' | 'refused';
  /** performance.now() at arrival, at the first text written, and when the response closed. */
  startedAt: number;
  firstTokenAt?: number;
  releasedAt?: number;
}

export interface ChatEmulatorStats {
  /** Requests whose response is still open. */
  active: number;
  requests: number;
  completed: number;
  aborted: number;
  /** Open TCP connections (keep-alive ones included). */
  sockets: number;
}

const chatPaths = new Set(['/v1/chat/completions', '/openai/v1/chat/completions']);
const roles = new Set(['system', 'user', 'assistant', 'developer']);
const maxRecorded = 1_000;
const maxQueuedReplies = 1_000;

export class ChatEmulator extends EventEmitter<{ released: [ChatEmulatorRequest] }> {
  readonly faults = new FaultSchedule<ChatFault>();
  readonly requests: ChatEmulatorRequest[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly options: Required<Omit<ChatEmulatorOptions, 'apiKey'>> & Pick<ChatEmulatorOptions, 'apiKey'>;
  private readonly queued: string[] = [];
  private source: ReplySource | null = null;
  private counters = { active: 0, requests: 0, completed: 0, aborted: 0 };
  private closed = false;
  private sequence = 0;
  url = '';

  constructor(options: ChatEmulatorOptions = {}) {
    super();
    this.options = {
      apiKey: options.apiKey,
      firstTokenDelayMs: options.firstTokenDelayMs ?? 0,
      tokenDelayMs: options.tokenDelayMs ?? 0,
      slowFirstTokenMs: options.slowFirstTokenMs ?? 30_000,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
      maxBodyBytes: options.maxBodyBytes ?? 256 * 1024,
    };
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Change pacing or behaviour for the requests that follow. */
  configure(changes: Partial<Omit<ChatEmulatorOptions, 'apiKey'>>): void {
    Object.assign(this.options, changes);
  }

  /** The next requests' replies, in order (before the reply source). */
  reply(...texts: string[]): void {
    this.queued.push(...texts);
    if (this.queued.length > maxQueuedReplies) this.queued.splice(0, this.queued.length - maxQueuedReplies);
  }

  /** The reply of every request the queue does not answer; null: echo the last user message. */
  replyWith(source: ReplySource | null): void {
    this.source = source;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve));
    const address = this.server.address() as AddressInfo;
    this.url = `http://${host}:${address.port}`;
    return this.url;
  }

  stats(): ChatEmulatorStats {
    return { ...this.counters, sockets: this.sockets.size };
  }

  /** Resolves when no response is open (or after `timeoutMs`), for tests that check releases. */
  async idle(timeoutMs = 2_000): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.counters.active > 0 && performance.now() < deadline) await sleep(5);
    return this.counters.active === 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Answer `req` if it is a chat-completions request (either path); false otherwise, so a
   * server of another emulator can mount this one: `if (!(await chat.handle(req, res))) …`.
   */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (!chatPaths.has(path)) return false;
    await this.completions(path, req, res);
    return true;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/_emulator/faults' && req.method === 'POST') return serveFaultControl(req, res, this.faults, isChatFault);
    if (path === '/_emulator/stats') return sendJson(res, 200, this.stats());
    if (!(await this.handle(req, res))) apiError(res, 404, 'Unknown request URL', 'invalid_request_error', 'unknown_url');
  }

  private async completions(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return apiError(res, 405, 'Method not allowed', 'invalid_request_error');
    if (this.options.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      req.resume();
      return apiError(res, 401, 'Invalid API Key', 'invalid_request_error', 'invalid_api_key');
    }
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(await readBody(req, this.options.maxBodyBytes, 10_000));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch (error) {
      if (error instanceof BodyTooLargeError) return apiError(res, 413, 'Request body too large', 'invalid_request_error');
      return apiError(res, 400, 'request body must be a JSON object', 'invalid_request_error');
    }
    const { model } = body;
    if (typeof model !== 'string' || model.length === 0) return apiError(res, 400, "'model' is required", 'invalid_request_error');
    const messages = parseMessages(body.messages);
    if (!messages) return apiError(res, 400, "'messages' must be a non-empty array of { role, content: string }", 'invalid_request_error');
    const limit = body.max_completion_tokens ?? body.max_tokens;
    const maxTokens = typeof limit === 'number' && Number.isInteger(limit) && limit > 0 ? limit : undefined;
    const lastUser = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const fault = this.faults.next(lastUser);
    const record: ChatEmulatorRequest = {
      path,
      model,
      messages,
      stream: body.stream === true,
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      ...(typeof body.temperature === 'number' ? { temperature: body.temperature } : {}),
      fault,
      sent: '',
      outcome: 'streaming',
      startedAt: performance.now(),
    };
    this.requests.push(record);
    if (this.requests.length > maxRecorded) this.requests.shift();
    this.counters.requests++;
    this.counters.active++;
    let open = true;
    res.once('close', () => {
      open = false;
      record.releasedAt = performance.now();
      this.counters.active--;
      if (record.outcome === 'streaming') {
        record.outcome = 'aborted';
        this.counters.aborted++;
      }
      this.emit('released', record);
    });
    const alive = () => open && !this.closed;
    const finish = (outcome: ChatEmulatorRequest['outcome']) => {
      if (record.outcome !== 'streaming') return;
      record.outcome = outcome;
      if (outcome === 'completed') this.counters.completed++;
    };
    switch (fault) {
      case 'rate_limited':
        finish('refused');
        res.setHeader('retry-after', String(this.options.retryAfterSeconds));
        return apiError(res, 429, `Rate limit reached for model \`${model}\`. Please try again in ${this.options.retryAfterSeconds}s.`, 'tokens', 'rate_limit_exceeded');
      case 'server_error':
        finish('refused');
        return apiError(res, 500, 'Internal Server Error', 'internal_server_error');
      case 'unauthorized':
        finish('refused');
        return apiError(res, 401, 'Invalid API Key', 'invalid_request_error', 'invalid_api_key');
    }
    const tokens = tokenize(this.replyFor({ model, messages }));
    const cut = maxTokens !== undefined && tokens.length > maxTokens;
    const pieces = cut ? tokens.slice(0, maxTokens) : tokens;
    if (!record.stream) return this.whole(res, record, pieces.join(''), cut ? 'length' : 'stop', finish);
    await this.stream(res, record, pieces, cut ? 'length' : 'stop', alive, finish);
  }

  private replyFor(context: ReplyContext): string {
    const queued = this.queued.shift();
    if (queued !== undefined) return queued;
    if (typeof this.source === 'string') return this.source;
    if (this.source) return this.source(context);
    return [...context.messages].reverse().find((m) => m.role === 'user')?.content ?? 'Hello.';
  }

  private async stream(
    res: ServerResponse,
    record: ChatEmulatorRequest,
    pieces: string[],
    finishReason: 'stop' | 'length',
    alive: () => boolean,
    finish: (outcome: ChatEmulatorRequest['outcome']) => void,
  ): Promise<void> {
    const fault = record.fault;
    const id = `chatcmpl-emu${(++this.sequence).toString(36)}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: Record<string, unknown>, reason: string | null) =>
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: record.model, system_fingerprint: 'fp_emulator', choices: [{ index: 0, delta, logprobs: null, finish_reason: reason }] })}\n\n`;
    const send = async (text: string): Promise<boolean> => {
      if (!alive()) return false;
      if (!res.write(text)) await drained(res);
      return alive();
    };
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': id });
    // Headers go out at once, as the services send them; the first text follows when it is ready.
    res.flushHeaders();
    if (!(await send(chunk({ role: 'assistant', content: '' }, null)))) return;
    const firstDelay = fault === 'slow_first_token' ? this.options.slowFirstTokenMs : this.options.firstTokenDelayMs;
    if (firstDelay > 0 && !(await this.wait(firstDelay, alive))) return;
    const breakAt = fault === 'stall_mid_stream' || fault === 'cut_stream' || fault === 'malformed_chunk' || fault === 'truncated' ? Math.max(1, Math.floor(pieces.length / 3)) : pieces.length;
    const pace = async () => (this.options.tokenDelayMs > 0 ? this.wait(this.options.tokenDelayMs, alive) : new Promise<boolean>((r) => setImmediate(() => r(alive()))));
    for (let i = 0; i < breakAt; i++) {
      if (i > 0 && !(await pace())) return;
      const text = pieces[i]!;
      record.firstTokenAt ??= performance.now();
      record.sent += text;
      if (!(await send(chunk({ content: text }, null)))) return;
    }
    switch (fault) {
      case 'stall_mid_stream':
        return; // hangs until the client gives up
      case 'cut_stream':
        finish('faulted');
        res.socket?.destroy();
        return;
      case 'truncated':
        finish('faulted');
        res.end();
        return;
      case 'malformed_chunk':
        finish('faulted');
        if (!(await send('data: {not json\n\n'))) return;
        res.end(`${chunk({}, 'stop')}data: [DONE]\n\n`);
        return;
      case 'endless':
        for (let i = 0; alive(); i++) {
          if (!(await this.wait(Math.max(5, this.options.tokenDelayMs), alive))) return;
          const text = i % 2 === 0 ? 'and ' : 'more ';
          if (record.sent.length < 64 * 1024) record.sent += text; // the record stays bounded
          if (!(await send(chunk({ content: text }, null)))) return;
        }
        return;
    }
    if (!alive()) return;
    finish('completed');
    res.end(`${chunk({}, finishReason)}data: [DONE]\n\n`);
  }

  /** `stream: false`: the whole completion as one JSON body. */
  private whole(res: ServerResponse, record: ChatEmulatorRequest, text: string, finishReason: string, finish: (outcome: ChatEmulatorRequest['outcome']) => void): void {
    record.sent = text;
    record.firstTokenAt = performance.now();
    finish('completed');
    sendJson(res, 200, {
      id: `chatcmpl-emu${(++this.sequence).toString(36)}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: record.model,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finishReason }],
      usage: { prompt_tokens: 0, completion_tokens: tokenize(text).length, total_tokens: tokenize(text).length },
    });
  }

  /** Sleep `ms` in short steps, false as soon as the client is gone (a stalled reply notices its release). */
  private async wait(ms: number, alive: () => boolean): Promise<boolean> {
    const until = performance.now() + ms;
    while (alive()) {
      const left = until - performance.now();
      if (left <= 0) return true;
      await sleep(Math.min(left, 25));
    }
    return false;
  }

}

export async function startChatEmulator(options: ChatEmulatorOptions = {}, port = 0): Promise<ChatEmulator> {
  const emulator = new ChatEmulator(options);
  await emulator.listen(port);
  return emulator;
}

/** Word-sized pieces with their spaces, as the services' tokens roughly are; they join back to the text. */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

function parseMessages(value: unknown): ChatMessage[] | null {
  if (!Array.isArray(value) || value.length === 0 || value.length > 1_000) return null;
  const messages: ChatMessage[] = [];
  for (const m of value) {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !roles.has(role) || typeof content !== 'string') return null;
    messages.push({ role: role === 'developer' ? 'system' : (role as ChatMessage['role']), content });
  }
  return messages;
}

/** Resolves when `res` can take more, or when it closed (a client that stopped reading then left). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}


