// A local stand-in for Groq's speech endpoint: a real HTTP server speaking the same
// protocol (POST /openai/v1/audio/speech, Bearer auth, the same JSON error shape, a
// streamed WAV body) closely enough that the unmodified groq-sdk cannot tell, plus
// switchable faults. Used by the tests, the benchmarks and the offline demo.
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { int16ToBytes } from '../audio/pcm.js';
import { readBody } from '../server/readBody.js';
import { groqArabicModel, groqArabicVoices, groqEnglishModel, groqEnglishVoices, groqMaxInputChars } from '../providers/groq/groqProvider.js';
import { EmulatedSpeech } from './emulatedSpeech.js';
import { FaultSchedule, isUpstreamFault, type UpstreamFault } from './faults.js';

export interface GroqEmulatorOptions {
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  sampleRate?: number;
  /** Delay before the response starts (the "model" thinking). */
  firstByteDelayMs?: number;
  /** Audio per body write. */
  chunkMs?: number;
  /** 0: send as fast as possible; 1: pace the body at real time. */
  realtime?: number;
  retryAfterSeconds?: number;
  /** Where the LIST chunk goes; real encoders do both. */
  listChunk?: 'after-fmt' | 'before-fmt' | 'none';
}

export interface EmulatedRequest {
  input: string;
  voice: string;
  model: string;
  fault: UpstreamFault | null;
  /** Samples the emulator meant to send for this request (computed when first read). */
  readonly samples: Int16Array;
  outcome: 'streaming' | 'completed' | 'aborted' | 'faulted' | 'refused';
  /** performance.now() when the request arrived and when its response closed. */
  startedAt: number;
  releasedAt?: number;
}

export interface EmulatorStats {
  /** Requests whose response is still open. */
  active: number;
  requests: number;
  completed: number;
  aborted: number;
  /** Open TCP connections (keep-alive ones included). */
  sockets: number;
}

const models = new Map<string, readonly string[]>([
  [groqEnglishModel, groqEnglishVoices],
  [groqArabicModel, groqArabicVoices],
]);

export class GroqEmulator extends EventEmitter<{ released: [{ at: number; outcome: EmulatedRequest['outcome']; input: string }] }> {
  readonly faults = new FaultSchedule();
  readonly requests: EmulatedRequest[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly options: Required<Omit<GroqEmulatorOptions, 'apiKey'>> & Pick<GroqEmulatorOptions, 'apiKey'>;
  private counters = { active: 0, requests: 0, completed: 0, aborted: 0 };
  private closed = false;
  url = '';

  constructor(options: GroqEmulatorOptions = {}) {
    super();
    this.options = {
      apiKey: options.apiKey,
      sampleRate: options.sampleRate ?? 24_000,
      firstByteDelayMs: options.firstByteDelayMs ?? 0,
      chunkMs: options.chunkMs ?? 20,
      realtime: options.realtime ?? 0,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
      listChunk: options.listChunk ?? 'after-fmt',
    };
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Change pacing or behaviour for the requests that follow. */
  configure(changes: Partial<Omit<GroqEmulatorOptions, 'apiKey'>>): void {
    Object.assign(this.options, changes);
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(port, host, resolve));
    const address = this.server.address() as AddressInfo;
    this.url = `http://${host}:${address.port}`;
    return this.url;
  }

  stats(): EmulatorStats {
    return { ...this.counters, sockets: this.sockets.size };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/_emulator/faults' && req.method === 'POST') return this.controlFaults(req, res);
    if (path === '/_emulator/stats') return sendJson(res, 200, this.stats());
    if (path !== '/openai/v1/audio/speech') return apiError(res, 404, 'Unknown request URL', 'invalid_request_error', 'unknown_url');
    if (req.method !== 'POST') return apiError(res, 405, 'Method not allowed', 'invalid_request_error');
    if (this.options.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      return apiError(res, 401, 'Invalid API Key', 'invalid_request_error', 'invalid_api_key');
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(await readBody(req, 64 * 1024, 10_000)) as Record<string, unknown>;
    } catch {
      return apiError(res, 400, 'request body must be JSON', 'invalid_request_error');
    }
    const { model, input, voice } = body;
    const format = body.response_format ?? 'wav';
    if (typeof input !== 'string' || input.trim().length === 0) return apiError(res, 400, "'input' is required", 'invalid_request_error');
    if (input.length > groqMaxInputChars) {
      return apiError(res, 400, `'input' must be at most ${groqMaxInputChars} characters`, 'invalid_request_error');
    }
    const voices = typeof model === 'string' ? models.get(model) : undefined;
    if (!voices) return apiError(res, 404, `The model \`${String(model)}\` does not exist`, 'invalid_request_error', 'model_not_found');
    if (typeof voice !== 'string' || !voices.includes(voice)) {
      return apiError(res, 400, `voice must be one of [${voices.join(' ')}]`, 'invalid_request_error');
    }
    if (format !== 'wav') return apiError(res, 400, 'response_format must be wav', 'invalid_request_error');
    const fault = this.faults.next(input);

    const speech = new EmulatedSpeech(input, this.options.sampleRate);
    const record: EmulatedRequest = {
      input,
      voice,
      model: model as string,
      fault,
      get samples() {
        return speech.all();
      },
      outcome: 'streaming',
      startedAt: performance.now(),
    };
    this.requests.push(record);
    if (this.requests.length > 1_000) this.requests.shift();
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
      this.emit('released', { at: performance.now(), outcome: record.outcome, input: record.input });
    });
    const alive = () => open && !this.closed;
    await this.respond(res, record, speech, fault, alive);
  }

  private async respond(res: ServerResponse, record: EmulatedRequest, speech: EmulatedSpeech, fault: UpstreamFault | null, alive: () => boolean): Promise<void> {
    const finish = (outcome: EmulatedRequest['outcome']) => {
      if (record.outcome !== 'streaming') return;
      record.outcome = outcome;
      if (outcome === 'completed') this.counters.completed++;
    };
    switch (fault) {
      case 'rate_limited':
        finish('refused');
        res.setHeader('retry-after', String(this.options.retryAfterSeconds));
        return apiError(res, 429, 'Rate limit reached for model. Please try again later.', 'tokens', 'rate_limit_exceeded');
      case 'server_error':
        finish('refused');
        return apiError(res, 500, 'Internal Server Error', 'internal_server_error');
      case 'unauthorized':
        finish('refused');
        return apiError(res, 401, 'Invalid API Key', 'invalid_request_error', 'invalid_api_key');
      case 'stall_before_first_byte':
        return; // the request hangs until the client gives up
    }
    if (this.options.firstByteDelayMs > 0) await sleep(this.options.firstByteDelayMs);
    if (!alive()) return;
    res.writeHead(200, { 'content-type': 'audio/wav' }); // chunked: the length is not known up front
    if (fault === 'premature_close') {
      finish('faulted');
      res.flushHeaders();
      res.socket?.destroy();
      return;
    }
    if (fault === 'malformed') {
      finish('faulted');
      res.end(Buffer.from('<html>upstream proxy error</html>\n'.repeat(40)));
      return;
    }
    if (fault === 'huge_frame') {
      // fmt, then a chunk claiming 2 GiB, then junk forever: a reader must refuse, not buffer.
      res.write(Buffer.concat([riffFmt(this.options.sampleRate), chunkHeader('junk', 0x7ffffff0)]));
      while (alive()) {
        if (!res.write(Buffer.alloc(16 * 1024, 0x5a))) await new Promise((r) => res.once('drain', r));
        await sleep(1);
      }
      finish('faulted');
      return;
    }
    const header = wavHeaderWithList(this.options.sampleRate, this.options.listChunk);
    const stepSamples = Math.max(1, Math.round((this.options.sampleRate * this.options.chunkMs) / 1000));
    const cutAt = fault === 'no_final_marker' || fault === 'error_mid_stream' || fault === 'stall_mid_stream' ? Math.floor(speech.length / 3) : speech.length;
    const trickle = fault === 'slow_trickle';
    res.write(header);
    if (trickle) {
      // 101-byte writes: samples split across writes, as a slow network delivers them.
      const bytes = Buffer.from(int16ToBytes(speech.slice(0, cutAt)));
      for (let at = 0; at < bytes.length && alive(); at += 101) {
        if (!res.write(bytes.subarray(at, at + 101))) await new Promise((r) => res.once('drain', r));
        await sleep(2);
      }
    } else {
      // Paced against the clock, not by summing sleeps: a long stream never drifts behind real time.
      const paceStart = performance.now();
      for (let at = 0; at < cutAt && alive(); ) {
        const pcm = speech.slice(at, Math.min(cutAt, at + stepSamples));
        at += pcm.length;
        if (!res.write(int16ToBytes(pcm))) await new Promise((r) => res.once('drain', r));
        if (this.options.realtime > 0) await sleep(Math.max(0, paceStart + ((at / this.options.sampleRate) * 1000) * this.options.realtime - performance.now()));
        else await new Promise((r) => setImmediate(r));
      }
    }
    if (!alive()) return;
    switch (fault) {
      case 'no_final_marker':
        // A clean FIN without the chunked terminator: the body ends short.
        finish('faulted');
        res.socket?.end();
        return;
      case 'error_mid_stream':
        finish('faulted');
        res.socket?.resetAndDestroy();
        return;
      case 'stall_mid_stream':
        return; // hangs until the client gives up
      default:
        finish('completed');
        res.end();
    }
  }

  private async controlFaults(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const body = JSON.parse(await readBody(req, 16 * 1024, 10_000)) as { push?: unknown[]; always?: unknown; clear?: boolean };
      if (body.clear) this.faults.clear();
      for (const f of body.push ?? []) if (isUpstreamFault(f)) this.faults.push(f);
      if (body.always === null || isUpstreamFault(body.always)) this.faults.always(body.always);
      sendJson(res, 200, { ok: true });
    } catch {
      sendJson(res, 400, { ok: false });
    }
  }
}

export async function startGroqEmulator(options: GroqEmulatorOptions = {}, port = 0): Promise<GroqEmulator> {
  const emulator = new GroqEmulator(options);
  await emulator.listen(port);
  return emulator;
}

function riffFmt(sampleRate: number): Buffer {
  const b = Buffer.alloc(36);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(0xffffffff, 4);
  b.write('WAVEfmt ', 8, 'ascii');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  return b;
}

function chunkHeader(id: string, size: number): Buffer {
  const b = Buffer.alloc(8);
  b.write(id, 0, 'ascii');
  b.writeUInt32LE(size, 4);
  return b;
}

/** RIFF, fmt, a LIST/INFO chunk (odd-sized, so padded), and an open-ended data chunk. */
function wavHeaderWithList(sampleRate: number, where: 'after-fmt' | 'before-fmt' | 'none'): Buffer {
  const riff = riffFmt(sampleRate);
  const info = Buffer.from('INFOISFT\x09\x00\x00\x00voxline\x00\x00', 'latin1'); // 21 bytes: odd on purpose
  const list = Buffer.concat([chunkHeader('LIST', info.length), info, Buffer.alloc(1)]);
  const data = chunkHeader('data', 0xffffffff);
  if (where === 'none') return Buffer.concat([riff, data]);
  if (where === 'after-fmt') return Buffer.concat([riff, list, data]);
  return Buffer.concat([riff.subarray(0, 12), list, riff.subarray(12), data]);
}

function apiError(res: ServerResponse, status: number, message: string, type: string, code?: string): void {
  sendJson(res, status, { error: { message, type, ...(code ? { code } : {}) } });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
