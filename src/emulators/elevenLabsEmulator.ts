// A local stand-in for ElevenLabs' multi-context TTS WebSocket
// (/v1/text-to-speech/{voice}/multi-stream-input): `xi-api-key` auth, contexts opened by
// a first text message, flush / close_context / close_socket, base64 PCM with `contextId`
// in chunks of odd byte length (a sample split across two messages, as the service does),
// audio after `close_context` for text flushed before it (unflushed text is dropped),
// `isFinal` only after `close_context`, and the service's own rules enforced with its 1008
// closes (an error message naming the rule, then the close whose reason is the service's
// sentence cut to 123 bytes): at most 5 contexts (`max_active_conversations`), an
// inactivity timeout counted from the client's last message, pings aside
// (`input_timeout_exceeded`), and no flush or close of a context never opened
// (`invalid_input_message`). Faults are taken one per context; `closeOvertakesText` and
// `failContextWhen` model what the service does under load and to a context it rejects.
import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import { requestTarget } from '../server/requestTarget.js';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, type WebSocket } from 'ws';
import { int16ToBytes } from '../audio/pcm.js';
import { emulatedSpeech } from './emulatedSpeech.js';
import { FaultSchedule, type UpstreamFault } from './faults.js';

export interface ElevenLabsEmulatorOptions {
  apiKey?: string;
  /** Audio per message. */
  chunkMs?: number;
  firstByteDelayMs?: number;
  /** 0: as fast as possible; 1: real time. */
  realtime?: number;
  maxContexts?: number;
  /**
   * The service under load: a `close_context` that arrives before the context's first audio
   * is honoured at once; its text is dropped and `isFinal` comes with no audio.
   */
  closeOvertakesText?: boolean;
}

export interface ElevenLabsEmulatorStats {
  connections: number;
  /** Contexts open on the service side, across connections. */
  contexts: number;
  contextsOpened: number;
  contextsClosed: number;
  /** Connections the service closed with a 1008 policy violation, by reason. */
  policyCloses: Record<string, number>;
}

interface EmulatedContext {
  id: string;
  buffer: string;
  /** Decided by the context's first real text (undefined until then). */
  fault: UpstreamFault | null | undefined;
  /** Generation jobs in order; each resolves when its audio is out. */
  chain: Promise<void>;
  closing: boolean;
  dead: boolean;
  sentAudio: boolean;
}

/** The service's own words for its 1008 closes. */
const policyMessages = {
  max_active_conversations: (max: number) =>
    `Maximum simultaneous contexts per WebSocket connection exceeded (${max}). Please close an existing context before opening a new one.`,
  input_timeout_exceeded: (seconds: number) =>
    `Have not received a new text input within the timeout of ${seconds} seconds. Streaming input terminated. Please make sure to either feed the input in the timely manner, or to send the end of input text (empty string "") when done.`,
};

/** A WebSocket close reason holds at most 123 bytes; the service cuts its sentence there. */
function closeReason(message: string): string {
  return Buffer.from(message, 'utf8').subarray(0, 123).toString('utf8').replace(/\uFFFD$/, '');
}

export class ElevenLabsEmulator extends EventEmitter<{
  contextClosed: [{ at: number; contextId: string }];
  text: [{ contextId: string; text: string }];
}> {
  readonly faults = new FaultSchedule();
  /** Samples sent per context (for exact comparison in tests). */
  readonly sent = new Map<string, Int16Array[]>();
  private readonly contextFailures = new Set<string>();
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly live = new Set<WebSocket>();
  private readonly options: Required<Omit<ElevenLabsEmulatorOptions, 'apiKey'>> & Pick<ElevenLabsEmulatorOptions, 'apiKey'>;
  private counters = { contexts: 0, contextsOpened: 0, contextsClosed: 0, policyCloses: {} as Record<string, number> };
  url = '';

  constructor(options: ElevenLabsEmulatorOptions = {}) {
    super();
    this.options = {
      apiKey: options.apiKey,
      chunkMs: options.chunkMs ?? 50,
      firstByteDelayMs: options.firstByteDelayMs ?? 0,
      realtime: options.realtime ?? 0,
      maxContexts: options.maxContexts ?? 5,
      closeOvertakesText: options.closeOvertakesText ?? false,
    };
    this.http = createServer((_req, res) => {
      res.writeHead(404).end();
    });
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    this.http.on('upgrade', (req, socket, head) => {
      const url = requestTarget(req);
      const match = url && /^\/v1\/text-to-speech\/([^/]+)\/multi-stream-input$/.exec(url.pathname);
      if (!url || !match) {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
        return;
      }
      if (this.options.apiKey !== undefined && req.headers['xi-api-key'] !== this.options.apiKey) {
        socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"detail":{"status":"invalid_api_key"}}');
        return;
      }
      const format = url.searchParams.get('output_format') ?? 'mp3_44100_128';
      const rate = /^pcm_(16000|22050|24000|44100)$/.exec(format);
      if (!rate) {
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
        return;
      }
      const inactivityS = Number(url.searchParams.get('inactivity_timeout') ?? 20);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.serve(ws, Number(rate[1]), Math.min(180, Math.max(1, inactivityS))));
    });
  }

  /** Change pacing or behaviour for the requests that follow. */
  configure(changes: Partial<Omit<ElevenLabsEmulatorOptions, 'apiKey'>>): void {
    Object.assign(this.options, changes);
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.http.listen(port, host, resolve));
    this.url = `ws://${host}:${(this.http.address() as AddressInfo).port}`;
    return this.url;
  }

  /**
   * The first context whose text contains `marker` is rejected on its own: an error message
   * naming the context, the context let go (no longer counted), the socket left open.
   */
  failContextWhen(marker: string): void {
    this.contextFailures.add(marker);
  }

  stats(): ElevenLabsEmulatorStats {
    return { connections: this.live.size, ...this.counters, policyCloses: { ...this.counters.policyCloses } };
  }

  /** Close every connection as the service would on an outage. */
  dropAll(code = 1011): void {
    for (const ws of this.live) ws.close(code, 'internal_error');
  }

  async close(): Promise<void> {
    for (const ws of this.live) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private serve(ws: WebSocket, sampleRate: number, inactivityS: number): void {
    this.live.add(ws);
    const contexts = new Map<string, EmulatedContext>();
    /** Contexts the service rejected: later messages for them are ignored. */
    const rejected = new Set<string>();
    let open = true;
    let inactivity: NodeJS.Timeout;
    // Counted from the client's last message; ws pings are not messages.
    const touch = () => {
      clearTimeout(inactivity);
      inactivity = setTimeout(() => policyClose('input_timeout_exceeded', policyMessages.input_timeout_exceeded(inactivityS)), inactivityS * 1000);
    };
    const send = (message: unknown) => {
      if (open) ws.send(typeof message === 'string' ? message : JSON.stringify(message));
    };
    const forget = (ctx: EmulatedContext) => {
      if (ctx.dead) return;
      ctx.dead = true;
      contexts.delete(ctx.id);
      this.counters.contexts--;
      this.counters.contextsClosed++;
      this.emit('contextClosed', { at: performance.now(), contextId: ctx.id });
    };
    const policyClose = (error: string, message: string) => {
      if (!open) return;
      this.counters.policyCloses[error] = (this.counters.policyCloses[error] ?? 0) + 1;
      send({ message, error, code: 1008 });
      ws.close(1008, closeReason(message));
      open = false;
    };
    touch();
    ws.on('close', () => {
      open = false;
      clearTimeout(inactivity);
      for (const ctx of [...contexts.values()]) forget(ctx);
      this.live.delete(ws);
    });
    ws.on('error', () => {});

    const speak = async (ctx: EmulatedContext, text: string): Promise<void> => {
      const samples = emulatedSpeech(text, sampleRate);
      const step = Math.max(1, Math.round((sampleRate * this.options.chunkMs) / 1000));
      const fault = ctx.fault;
      if (fault === 'stall_before_first_byte') return new Promise<void>(() => {}); // never
      if (this.options.firstByteDelayMs > 0 && !ctx.sentAudio) await sleep(this.options.firstByteDelayMs);
      const cut = fault === 'error_mid_stream' || fault === 'stall_mid_stream' || fault === 'no_final_marker' ? Math.floor(samples.length / 3) : samples.length;
      const bytes = Buffer.from(int16ToBytes(samples.subarray(0, cut)));
      // Odd-sized messages: every other one ends in the middle of a sample.
      const chunkBytes = (fault === 'slow_trickle' ? 240 : step) * 2 + 1;
      const paceStart = performance.now(); // paced against the clock: no drift behind real time
      let whole = 0; // samples complete in what was sent
      for (let at = 0; at < bytes.length && open && !ctx.dead; ) {
        const piece = bytes.subarray(at, Math.min(bytes.length, at + chunkBytes));
        at += piece.length;
        ctx.sentAudio = true;
        const list = this.sent.get(ctx.id) ?? [];
        list.push(samples.slice(whole, Math.floor(at / 2)));
        whole = Math.floor(at / 2);
        this.sent.set(ctx.id, list);
        send({ audio: piece.toString('base64'), isFinal: null, normalizedAlignment: null, alignment: null, contextId: ctx.id });
        if (fault === 'slow_trickle') await sleep(2);
        else if (this.options.realtime > 0) await sleep(Math.max(0, paceStart + ((at / 2 / sampleRate) * 1000) * this.options.realtime - performance.now()));
        else await new Promise((r) => setImmediate(r));
      }
      if (!open || ctx.dead) return;
      switch (fault) {
        case 'error_mid_stream':
          send({ message: 'An internal server error occurred.', error: 'internal_server_error', code: 1011 });
          ws.close(1011, 'internal_server_error');
          open = false;
          return new Promise<void>(() => {});
        case 'stall_mid_stream':
          return new Promise<void>(() => {});
        case 'no_final_marker':
          ws.close(1000);
          open = false;
          return new Promise<void>(() => {});
      }
    };

    const generate = (ctx: EmulatedContext) => {
      const text = ctx.buffer.trim();
      ctx.buffer = '';
      if (text.length > 0) ctx.chain = ctx.chain.then(() => speak(ctx, text));
    };

    ws.on('message', (data, isBinary) => {
      touch();
      let msg: Record<string, unknown>;
      try {
        if (isBinary) throw new Error('binary');
        msg = JSON.parse(data.toString()) as Record<string, unknown>;
        if (typeof msg !== 'object' || msg === null) throw new Error('shape');
      } catch {
        return policyClose('invalid_input_message', 'Invalid message received');
      }
      if (msg.close_socket === true) {
        ws.close(1000);
        return;
      }
      const id = msg.context_id;
      if (typeof id !== 'string' || id.length === 0) return policyClose('invalid_input_message', 'context_id is required');
      if (rejected.has(id)) return;
      let ctx = contexts.get(id);
      if (!ctx) {
        if (msg.flush === true || msg.close_context === true || typeof msg.text !== 'string') {
          return policyClose('invalid_input_message', `context ${id} was never initialised`);
        }
        if (contexts.size >= this.options.maxContexts) {
          return policyClose('max_active_conversations', policyMessages.max_active_conversations(this.options.maxContexts));
        }
        ctx = { id, buffer: '', fault: undefined, chain: Promise.resolve(), closing: false, dead: false, sentAudio: false };
        contexts.set(id, ctx);
        this.counters.contexts++;
        this.counters.contextsOpened++;
        return; // the first message only opens the context (its text is a single space)
      }
      if (ctx.closing) return policyClose('invalid_input_message', `context ${id} is closing`);
      if (ctx.fault === undefined && typeof msg.text === 'string' && msg.text.trim().length > 0) {
        const text = msg.text;
        const marker = [...this.contextFailures].find((m) => text.includes(m));
        if (marker !== undefined) {
          this.contextFailures.delete(marker);
          rejected.add(id);
          forget(ctx);
          send({ message: 'An error occurred while generating audio for this context.', error: 'context_failed', contextId: id });
          return;
        }
        ctx.fault = this.faults.next(msg.text);
        // Faults that hit the whole connection the moment the context gets text.
        switch (ctx.fault) {
          case 'premature_close':
            ws.terminate();
            return;
          case 'rate_limited':
            return policyClose('too_many_concurrent_requests', 'Too many concurrent requests for your plan.');
          case 'unauthorized':
            return policyClose('invalid_api_key', 'Invalid API key');
          case 'server_error':
            send({ message: 'An internal server error occurred.', error: 'internal_server_error', code: 1011 });
            ws.close(1011, 'internal_server_error');
            open = false;
            return;
          case 'malformed':
            send('{"audio": "%%%%not base64"');
            return;
          case 'huge_frame':
            send(hugeMessage(id));
            return;
        }
      }
      if (typeof msg.text === 'string' && msg.text.length > 0) {
        ctx.buffer += msg.text;
        this.emit('text', { contextId: id, text: msg.text });
      }
      if (msg.flush === true) generate(ctx);
      if (msg.close_context === true) {
        ctx.closing = true;
        const closing = ctx;
        // Text never flushed is not spoken.
        closing.buffer = '';
        if (this.options.closeOvertakesText && !closing.sentAudio) {
          // Under load the close is honoured before synthesis began: no audio, then isFinal.
          send({ isFinal: true, contextId: closing.id });
          forget(closing);
          return;
        }
        // What was flushed before the close is still spoken (a client must drop it), then isFinal.
        const finalize = () => {
          if (closing.dead || !open) return;
          send({ isFinal: true, contextId: closing.id });
          forget(closing);
        };
        void closing.chain.then(finalize);
      }
    });
  }
}

export async function startElevenLabsEmulator(options: ElevenLabsEmulatorOptions = {}, port = 0): Promise<ElevenLabsEmulator> {
  const emulator = new ElevenLabsEmulator(options);
  await emulator.listen(port);
  return emulator;
}

let hugeAudio: string | null = null;
/** A ~7 MB message (5 MiB of audio); built once, so the fault costs no time when it fires. */
function hugeMessage(contextId: string): string {
  hugeAudio ??= Buffer.alloc(5 * 1024 * 1024).toString('base64');
  return `{"audio":"${hugeAudio}","contextId":${JSON.stringify(contextId)}}`;
}
