// One WebSocket to ElevenLabs' multi-context endpoint for one voice. It owns the socket,
// its keepalive ping and idle timer, and routes audio to the contexts registered on it.
// A context keeps its slot until the service confirms it closed (isFinal) or a grace
// period passes, because the service counts it until then and closes the socket at 5.
// A context the service failed with an error gives its slot back at once: the service
// no longer counts it.
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { ProviderError } from '../types.js';

export interface ContextSink {
  readonly id: string;
  onAudio(pcm: Int16Array): void;
  onFinal(): void;
  onFail(error: ProviderError): void;
}

export interface ConnectionOptions {
  url: string;
  apiKey: string;
  connectTimeoutMs: number;
  /**
   * Close an idle connection ourselves once this long has passed since the last text message
   * we sent: the service counts its inactivity timeout from our last message (pings do not
   * count), not from its own last audio.
   */
  idleCloseMs: number;
  /** How long a closed context holds its slot waiting for the service's isFinal. */
  closeGraceMs: number;
  maxPayloadBytes: number;
  pingIntervalMs: number;
}

const base64 = /^[A-Za-z0-9+/]*={0,2}$/;

export class ElevenLabsConnection {
  /** Contexts that count against the service's limit: live ones and closed ones not yet confirmed. */
  private readonly contexts = new Map<string, ContextSink | null>();
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private readonly carry = new Map<string, number>();
  private readonly ws: WebSocket;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly connectTimer: NodeJS.Timeout;
  private lastUpstreamError: { error?: string; message?: string } | null = null;
  /** When we last sent a text message (or opened): where the service's inactivity clock starts. */
  private lastTextAt = performance.now();
  private failure: ProviderError | null = null;
  readonly opened: Promise<void>;
  closed = false;
  /**
   * A context the service never confirmed closing may still count against its limit, so
   * the connection takes no new context and closes once its live ones are done.
   */
  tainted = false;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly onGone: (connection: ElevenLabsConnection) => void,
  ) {
    // The key travels in a header, never in the URL.
    this.ws = new WebSocket(options.url, {
      headers: { 'xi-api-key': options.apiKey },
      maxPayload: options.maxPayloadBytes,
      perMessageDeflate: false,
    });
    this.opened = new Promise<void>((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('close', () => reject(this.failure ?? new ProviderError('provider_unavailable', 'elevenlabs connection closed')));
    });
    this.opened.catch(() => {});
    this.connectTimer = setTimeout(() => this.fail(new ProviderError('provider_unavailable', 'elevenlabs did not answer in time')), options.connectTimeoutMs);
    this.pingTimer = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.ping();
    }, options.pingIntervalMs);
    this.ws.on('open', () => {
      clearTimeout(this.connectTimer);
      this.lastTextAt = performance.now();
      this.armIdle();
    });
    this.ws.on('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      const retryAfter = Number(response.headers['retry-after']);
      response.resume();
      if (status === 401 || status === 403) this.fail(new ProviderError('provider_auth', `elevenlabs refused the credentials (HTTP ${status})`));
      else if (status === 429)
        this.fail(new ProviderError('rate_limited', 'elevenlabs rate limit reached', Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined));
      else this.fail(new ProviderError('provider_unavailable', `elevenlabs refused the connection (HTTP ${status})`));
    });
    this.ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    // A protocol error (e.g. a message over maxPayload) ends the connection now; the
    // closing handshake that follows may take a while and must not hold the contexts.
    this.ws.on('error', (error: Error & { code?: string }) =>
      this.fail(
        error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? new ProviderError('provider_unavailable', 'elevenlabs sent a message over the size limit')
          : new ProviderError('provider_unavailable', 'elevenlabs connection failed'),
      ),
    );
    this.ws.on('close', (code, reason) => this.onClose(code, reason.toString('utf8')));
  }

  /** Live plus not-yet-confirmed contexts. */
  get load(): number {
    return this.contexts.size;
  }

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === WebSocket.OPEN;
  }

  /** Can take a new context: not failing, not closing, not tainted, below `limit`. */
  accepts(limit: number): boolean {
    const state = this.ws.readyState;
    return !this.closed && !this.tainted && (state === WebSocket.OPEN || state === WebSocket.CONNECTING) && this.contexts.size < limit;
  }

  register(sink: ContextSink): void {
    this.contexts.set(sink.id, sink);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  /** Forget a context that never reached the service (nothing was sent for it). */
  unregister(id: string): void {
    this.forget(id);
  }

  /** The context was closed on our side: drop its late audio, keep its slot until isFinal or the grace period. */
  retire(id: string): void {
    if (!this.contexts.has(id)) return;
    this.contexts.set(id, null);
    this.graceTimers.set(
      id,
      setTimeout(() => {
        this.tainted = true;
        this.forget(id);
      }, this.options.closeGraceMs),
    );
  }

  send(message: Record<string, unknown>): boolean {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    if (typeof message.text === 'string') this.lastTextAt = performance.now();
    return true;
  }

  /** Close the socket and fail whatever is still registered. Idempotent. */
  close(): void {
    if (this.closed) return;
    if (this.isOpen) this.ws.send(JSON.stringify({ close_socket: true }));
    this.fail(new ProviderError('provider_unavailable', 'elevenlabs connection closed'), 1000);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    let message: Record<string, unknown>;
    try {
      if (isBinary) throw new Error('binary');
      const parsed: unknown = JSON.parse(data.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      message = parsed as Record<string, unknown>;
    } catch {
      this.fail(new ProviderError('provider_unavailable', 'elevenlabs sent a malformed message'));
      return;
    }
    const contextId = typeof message.contextId === 'string' ? message.contextId : typeof message.context_id === 'string' ? message.context_id : null;
    if (typeof message.error === 'string' || (contextId === null && typeof message.message === 'string')) {
      // The service explains itself in a message, then closes the socket (1008).
      this.lastUpstreamError = {
        ...(typeof message.error === 'string' ? { error: message.error } : {}),
        ...(typeof message.message === 'string' ? { message: message.message } : {}),
      };
      const error = closeError(1008, message.error as string | undefined, this.lastUpstreamError);
      if (contextId === null) {
        this.fail(error);
        return;
      }
      // The service let go of that context: its slot is free now, whatever happens to the sink.
      const sink = this.contexts.get(contextId);
      this.forget(contextId);
      sink?.onFail(error);
      return;
    }
    if (contextId === null) return; // nothing we act on
    const sink = this.contexts.get(contextId);
    if (sink === undefined) return; // a context we never opened or already forgot
    if (typeof message.audio === 'string' && message.audio.length > 0) {
      if (message.audio.length % 4 !== 0 || !base64.test(message.audio)) {
        this.fail(new ProviderError('provider_unavailable', 'elevenlabs sent malformed audio'));
        return;
      }
      if (sink) sink.onAudio(this.decode(contextId, Buffer.from(message.audio, 'base64')));
    }
    if (message.isFinal === true) {
      this.forget(contextId);
      sink?.onFinal();
    }
  }

  /** Little-endian 16-bit PCM; an odd trailing byte waits for the next message of the context. */
  private decode(contextId: string, bytes: Buffer): Int16Array {
    const held = this.carry.get(contextId);
    const joined = held === undefined ? bytes : Buffer.concat([Buffer.from([held]), bytes]);
    const whole = joined.length - (joined.length % 2);
    if (whole < joined.length) this.carry.set(contextId, joined[whole]!);
    else this.carry.delete(contextId);
    const out = new Int16Array(whole / 2);
    for (let i = 0; i < out.length; i++) out[i] = joined.readInt16LE(i * 2);
    return out;
  }

  private onClose(code: number, reason: string): void {
    this.fail(closeError(code, reason, this.lastUpstreamError));
  }

  private fail(error: ProviderError, closeCode?: number): void {
    const first = !this.closed;
    this.closed = true;
    this.failure ??= error;
    clearTimeout(this.connectTimer);
    clearInterval(this.pingTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    for (const timer of this.graceTimers.values()) clearTimeout(timer);
    this.graceTimers.clear();
    const sinks = [...this.contexts.values()];
    this.contexts.clear();
    this.carry.clear();
    for (const sink of sinks) sink?.onFail(this.failure);
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(closeCode ?? 1000);
    else if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
    if (first) this.onGone(this);
  }

  private forget(id: string): void {
    this.contexts.delete(id);
    this.carry.delete(id);
    const timer = this.graceTimers.get(id);
    if (timer) clearTimeout(timer);
    this.graceTimers.delete(id);
    this.armIdle();
  }

  /**
   * With no context left, close `idleCloseMs` after the last text we sent (at once if that
   * moment already passed while a context was still speaking).
   */
  private armIdle(): void {
    if (this.closed || this.contexts.size > 0 || this.idleTimer) return;
    if (this.tainted) {
      this.close();
      return;
    }
    const left = this.lastTextAt + this.options.idleCloseMs - performance.now();
    if (left <= 0) {
      this.close();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.contexts.size === 0) this.close();
    }, left);
  }
}

/** The service's close codes and error names, as the engine's typed codes. */
export function closeError(code: number, reason: string | undefined, upstream: { error?: string; message?: string } | null): ProviderError {
  // The close reason carries the service's sentence (cut to 123 bytes), the message before it the error's name.
  const name = `${upstream?.error ?? ''} ${reason ?? ''}`;
  if (name.includes('input_timeout_exceeded') || name.includes('Have not received a new text input')) return new ProviderError('provider_timeout', 'elevenlabs closed the context after waiting too long for text');
  if (name.includes('max_active_conversations') || name.includes('Maximum simultaneous contexts')) return new ProviderError('provider_busy', 'elevenlabs has too many open contexts on this connection');
  if (name.includes('invalid_input_message')) return new ProviderError('provider_rejected', 'elevenlabs rejected a message');
  if (/invalid_api_key|unauthori[sz]ed|authentication|quota_exceeded/.test(name)) return new ProviderError('provider_auth', 'elevenlabs refused the credentials');
  if (/too_many_concurrent_requests|rate_limit/.test(name)) return new ProviderError('rate_limited', 'elevenlabs rate limit reached');
  if (code === 1009) return new ProviderError('provider_unavailable', 'elevenlabs sent a message over the size limit');
  return new ProviderError('provider_unavailable', `elevenlabs connection closed (code ${code})`);
}
