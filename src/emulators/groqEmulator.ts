// A local stand-in for Groq's speech endpoint: a real HTTP server speaking the same
// protocol (POST /openai/v1/audio/speech, Bearer auth, the same JSON error shape, a
// streamed WAV body) closely enough that the unmodified groq-sdk cannot tell, plus
// switchable faults. Used by the tests, the benchmarks and the offline demo.
// It also transcribes (POST /openai/v1/audio/transcriptions, multipart as the SDK sends it,
// WAV uploads only): the text comes from a queue the test fills, else "heard N ms".
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { int16ToBytes } from '../audio/pcm.js';
import { WavStreamParser } from '../audio/wavStreamParser.js';
import { BodyTimeoutError, BodyTooLargeError, readBody, readBodyBytes } from '../server/readBody.js';
import { groqArabicModel, groqArabicVoices, groqEnglishModel, groqEnglishVoices, groqMaxInputChars } from '../providers/groq/groqProvider.js';
import { EmulatedSpeech } from './emulatedSpeech.js';
import { FaultSchedule, isUpstreamFault, type UpstreamFault } from './faults.js';
import { apiError, sendJson, serveFaultControl } from './httpReplies.js';

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
  /** Largest transcription upload accepted (default 4 MiB); a larger one is refused with 413. */
  maxUploadBytes?: number;
}

/** One transcription request as the emulator saw it. */
export interface EmulatedTranscription {
  model: string;
  language: string | undefined;
  prompt: string | undefined;
  responseFormat: string;
  /** The uploaded WAV's rate and length. */
  sampleRate: number;
  audioMs: number;
  /** The uploaded samples (mono 16-bit), for tests comparing what was sent. */
  samples: Int16Array;
  fault: UpstreamFault | null;
  /** The text it answered (or would have, had no fault struck). */
  text: string;
  outcome: 'pending' | 'completed' | 'aborted' | 'faulted' | 'refused';
  startedAt: number;
  releasedAt?: number;
}

/** What decides a transcription's text: a fixed string, or a function of the request. */
export type TranscriptSource = string | ((request: Omit<EmulatedTranscription, 'text' | 'outcome'>) => string);

export const whisperModels = ['whisper-large-v3', 'whisper-large-v3-turbo'] as const;

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
  /** Transcription requests whose response is still open. */
  transcribing: number;
}

const models = new Map<string, readonly string[]>([
  [groqEnglishModel, groqEnglishVoices],
  [groqArabicModel, groqArabicVoices],
]);

export class GroqEmulator extends EventEmitter<{ released: [{ at: number; outcome: EmulatedRequest['outcome']; input: string }] }> {
  readonly faults = new FaultSchedule();
  readonly requests: EmulatedRequest[] = [];
  /** Faults for transcription requests: separate, so a speech test's queue never hits them. */
  readonly transcriptionFaults = new FaultSchedule();
  readonly transcriptions: EmulatedTranscription[] = [];
  /** Texts for the next transcriptions, in order; when empty, "heard N ms". */
  readonly transcripts: TranscriptSource[] = [];
  private transcribing = 0;
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
      maxUploadBytes: options.maxUploadBytes ?? 4 * 1024 * 1024,
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
    return { ...this.counters, sockets: this.sockets.size, transcribing: this.transcribing };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/_emulator/faults' && req.method === 'POST') return serveFaultControl(req, res, this.faults, isUpstreamFault);
    if (path === '/_emulator/stats') return sendJson(res, 200, this.stats());
    if (path === '/openai/v1/audio/transcriptions') return this.transcribe(req, res);
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

  private async transcribe(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return apiError(res, 405, 'Method not allowed', 'invalid_request_error');
    if (this.options.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      req.resume(); // drain the upload unread, so the connection can carry the answer
      return apiError(res, 401, 'Invalid API Key', 'invalid_request_error', 'invalid_api_key');
    }
    const contentType = req.headers['content-type'] ?? '';
    if (!/^multipart\/form-data\s*;/i.test(contentType)) {
      req.resume();
      return apiError(res, 400, 'request Content-Type must be multipart/form-data', 'invalid_request_error');
    }
    let form: FormData;
    try {
      const bytes = await readBodyBytes(req, this.options.maxUploadBytes, 10_000);
      // Node's own fetch (undici) parses multipart: no dependency, and it is the parser the
      // platform's FormData bodies are made to match. Anything it refuses is a 400.
      form = await new Response(new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength), { headers: { 'content-type': contentType } }).formData();
    } catch (error) {
      if (error instanceof BodyTooLargeError) return apiError(res, 413, 'Request Entity Too Large', 'invalid_request_error', 'request_too_large');
      if (error instanceof BodyTimeoutError) {
        res.setHeader('connection', 'close');
        return apiError(res, 408, 'request body did not arrive in time', 'invalid_request_error');
      }
      return apiError(res, 400, 'request body is not valid multipart/form-data', 'invalid_request_error');
    }
    const file = form.get('file');
    const model = form.get('model');
    const language = stringField(form, 'language');
    const prompt = stringField(form, 'prompt');
    const responseFormat = stringField(form, 'response_format') ?? 'json';
    if (!(file instanceof Blob)) return apiError(res, 400, 'file or url must be provided', 'invalid_request_error');
    if (typeof model !== 'string' || !(whisperModels as readonly string[]).includes(model)) {
      return apiError(res, 404, `The model \`${String(model)}\` does not exist`, 'invalid_request_error', 'model_not_found');
    }
    if (responseFormat !== 'json' && responseFormat !== 'text') return apiError(res, 400, 'response_format must be json or text', 'invalid_request_error');
    let samples: Int16Array;
    let sampleRate: number;
    try {
      const parser = new WavStreamParser();
      samples = parser.push(new Uint8Array(await file.arrayBuffer()));
      parser.end();
      sampleRate = parser.format!.sampleRate;
    } catch {
      return apiError(res, 400, 'could not process file - is it a valid media file?', 'invalid_request_error');
    }
    if (samples.length < sampleRate / 100) return apiError(res, 400, 'Audio file is too short. Minimum audio length is 0.01 seconds.', 'invalid_request_error');

    const fault = this.transcriptionFaults.next(prompt ?? '');
    const heard = { model, language, prompt, responseFormat, sampleRate, audioMs: Math.round((samples.length * 1000) / sampleRate), samples, fault, startedAt: performance.now() };
    // Only an answer that delivers a text uses up a queued transcript.
    const delivers = fault === null || fault === 'slow_trickle';
    const source = delivers ? this.transcripts.shift() : undefined;
    const text = !delivers ? '' : source === undefined ? `heard ${heard.audioMs} ms` : typeof source === 'function' ? source(heard) : source;
    const record: EmulatedTranscription = { ...heard, text, outcome: 'pending' };
    this.transcriptions.push(record);
    if (this.transcriptions.length > 1_000) this.transcriptions.shift();
    this.transcribing++;
    let open = true;
    res.once('close', () => {
      open = false;
      this.transcribing--;
      record.releasedAt = performance.now();
      if (record.outcome === 'pending') record.outcome = 'aborted';
    });
    const body = responseFormat === 'text' ? text : JSON.stringify({ text, x_groq: { id: `req_emulated_${this.transcriptions.length}` } });
    await this.answerTranscription(res, record, body, responseFormat === 'text' ? 'text/plain; charset=utf-8' : 'application/json', () => open && !this.closed);
  }

  private async answerTranscription(res: ServerResponse, record: EmulatedTranscription, body: string, contentType: string, alive: () => boolean): Promise<void> {
    const finish = (outcome: EmulatedTranscription['outcome']) => {
      if (record.outcome === 'pending') record.outcome = outcome;
    };
    switch (record.fault) {
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
        return; // no headers, ever: the client must give up (outcome 'aborted' when it does)
      case 'premature_close':
        finish('faulted');
        res.socket?.resetAndDestroy(); // reset before any answer
        return;
    }
    if (this.options.firstByteDelayMs > 0) await sleep(this.options.firstByteDelayMs);
    if (!alive()) return;
    const half = body.slice(0, Math.floor(body.length / 2));
    switch (record.fault) {
      case 'malformed':
        finish('faulted');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('<html>upstream proxy error</html>\n');
        return;
      case 'stall_mid_stream':
        res.writeHead(200, { 'content-type': contentType }); // chunked
        res.write(half);
        return; // the rest never comes
      case 'error_mid_stream':
        finish('faulted');
        res.writeHead(200, { 'content-type': contentType });
        res.write(half, () => res.socket?.resetAndDestroy());
        return;
      case 'no_final_marker':
        finish('faulted');
        res.writeHead(200, { 'content-type': contentType });
        res.write(half, () => res.socket?.end()); // a clean FIN without the chunked terminator
        return;
      case 'huge_frame':
        // A JSON string that never ends: a client must refuse it, not buffer it.
        res.writeHead(200, { 'content-type': contentType });
        res.write('{"text":"');
        while (alive()) {
          if (!res.write(Buffer.alloc(16 * 1024, 0x61))) await new Promise((r) => res.once('drain', r));
          await sleep(1);
        }
        finish('faulted');
        return;
      case 'slow_trickle': {
        res.writeHead(200, { 'content-type': contentType });
        for (let at = 0; at < body.length && alive(); at += 3) {
          res.write(body.slice(at, at + 3));
          await sleep(2);
        }
        if (!alive()) return;
        finish('completed');
        res.end();
        return;
      }
      default:
        finish('completed');
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
        res.end(body);
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

function stringField(form: FormData, name: string): string | undefined {
  const value = form.get(name);
  return typeof value === 'string' ? value : undefined;
}


