// POST /v1/audio/speech and /openai/v1/audio/speech: the Groq / OpenAI speech API, so an
// app using groq-sdk or openai only changes its baseURL. Each request is one utterance of
// one session actor, the same machine as the WebSocket path: the response streams as audio
// is made, the client closing the connection is a STOP, and errors use the APIs' JSON shape
// and status codes so the SDKs raise their usual error classes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { ErrorCode, ServerMessage, WireError } from '../../machines/types.js';
import { int16ToBytes, wavHeader } from '../audio/pcm.js';
import type { SessionHandle, SessionTransport, VoiceEngine } from '../engine/voiceEngine.js';
import type { Lease } from '../engine/admission.js';
import { httpStatus } from '../protocol/httpStatus.js';
import { BodyTimeoutError, BodyTooLargeError, readBody } from './readBody.js';
import { PacedEncoder } from './pacedEncoder.js';

export const speechPaths = ['/v1/audio/speech', '/openai/v1/audio/speech'] as const;

/**
 * Formats streamed as audio is made. mp3 uses the optional @breezystack/lamejs (LGPL, so
 * optional, like the embedded voice); opus, aac, flac and ogg need an encoder we do not ship.
 */
export const speechFormats = ['wav', 'pcm', 'mp3'] as const;
type SpeechFormat = (typeof speechFormats)[number];

interface Mp3Encoder {
  encodeBuffer(pcm: Int16Array): Uint8Array;
  flush(): Uint8Array;
}
let mp3Module: Promise<{ Mp3Encoder: new (channels: number, rate: number, kbps: number) => Mp3Encoder } | null> | null = null;
function loadMp3(): Promise<{ Mp3Encoder: new (channels: number, rate: number, kbps: number) => Mp3Encoder } | null> {
  mp3Module ??= import('@breezystack/lamejs').then(
    (m) => m as unknown as { Mp3Encoder: new (channels: number, rate: number, kbps: number) => Mp3Encoder },
    () => null,
  );
  return mp3Module;
}

/** Model names accepted: voxline's own, OpenAI's and Groq's, so existing code works unchanged. The voice picks the provider. */
export const speechModels = [
  'voxline',
  'tts-1',
  'tts-1-hd',
  'gpt-4o-mini-tts',
  'canopylabs/orpheus-v1-english',
  'canopylabs/orpheus-arabic-saudi',
] as const;

const speechRequestSchema = z.object({
  model: z.string({ error: "'model' is required" }).min(1, "'model' is required"),
  input: z.string({ error: "'input' is required" }).min(1, "'input' must not be empty"),
  voice: z.string({ error: "'voice' is required" }).min(1, "'voice' is required").max(128),
  response_format: z.string().optional(),
  speed: z.number().optional(),
  sample_rate: z.number().int().optional(),
  instructions: z.string().optional(),
  stream_format: z.string().optional(),
});

export interface SpeechEndpointOptions {
  /** Largest request body accepted (413 above it). */
  maxBodyBytes: number;
  /** The whole body must arrive within this long (408 after it). */
  bodyTimeoutMs: number;
}

type ApiErrorType = 'invalid_request_error' | 'authentication_error' | 'rate_limit_error' | 'server_error';

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function createSpeechEndpoint(engine: VoiceEngine, options: SpeechEndpointOptions) {
  // Loading the encoder evaluates a large module synchronously: do it now, not inside someone's request.
  void loadMp3();
  return async function handleSpeech(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Every lease this request holds (its place under the IP and key caps) goes back once, when the response is over.
    const leases: Lease[] = [];
    let closed = false;
    res.once('close', () => {
      closed = true;
      for (const lease of leases) lease.release();
    });
    try {
      if (engine.isDraining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
      // The same admission as a WebSocket: Origin, the per-IP cap, the key and its session cap, the text budget.
      const admission = engine.admission;
      const ip = req.socket.remoteAddress ?? 'unknown';
      const connection = admission.admitConnection(ip, req.headers.origin);
      if (!connection.ok) throw refusal(connection.refusal.code, connection.refusal.message);
      leases.push(connection.value);
      const token = bearer(req.headers.authorization);
      const verdict = admission.admitSession(token);
      // A cluster's cap answers from Redis; a client gone meanwhile gets its place back at once.
      const session = verdict instanceof Promise ? await verdict : verdict;
      if (closed && session.ok) session.value.release();
      if (!session.ok) {
        if (session.refusal.code === 'unauthorized') {
          throw new ApiError(401, 'a valid API key is required in the Authorization header (Bearer)', 'invalid_request_error', null, 'invalid_api_key');
        }
        throw refusal(session.refusal.code, session.refusal.message);
      }
      leases.push(session.value);
      const body = speechRequestSchema.safeParse(await readJson(req, options.maxBodyBytes, options.bodyTimeoutMs));
      if (!body.success) {
        const issue = body.error.issues[0]!;
        throw new ApiError(400, issue.message, 'invalid_request_error', issue.path.join('.') || null);
      }
      const request = body.data;
      if (request.input.length > engine.maxTextChars) {
        throw new ApiError(400, `'input' may hold at most ${engine.maxTextChars} characters`, 'invalid_request_error', 'input', 'text_too_long');
      }
      const spent = admission.admitRequestText(admission.clientOf(ip, token), request.input.length);
      if (!(spent instanceof Promise ? await spent : spent)) {
        throw new ApiError(429, `over ${admission.policy.textCharsPerMinute} characters of text per minute`, 'rate_limit_error', null, 'rate_limited', 60_000);
      }
      if (!(speechModels as readonly string[]).includes(request.model)) {
        throw new ApiError(400, `unknown model "${request.model}"; available: ${speechModels.join(', ')}`, 'invalid_request_error', 'model', 'model_not_found');
      }
      if (!engine.hasVoice(request.voice)) {
        const voices = engine.voices.map((v) => v.id).join(', ');
        throw new ApiError(400, `unknown voice "${request.voice}"; available: ${voices} (or provider:voice)`, 'invalid_request_error', 'voice');
      }
      const format = request.response_format ?? 'wav';
      if (!(speechFormats as readonly string[]).includes(format)) {
        throw new ApiError(400, `response_format "${format}" is not supported; supported: ${speechFormats.join(', ')}`, 'invalid_request_error', 'response_format');
      }
      if (request.speed !== undefined && request.speed !== 1) {
        throw new ApiError(400, 'speed must be 1.0: voxline does not time-stretch yet', 'invalid_request_error', 'speed');
      }
      const sampleRate = request.sample_rate ?? engine.sampleRates[0]!;
      if (!engine.sampleRates.includes(sampleRate)) {
        throw new ApiError(400, `sample_rate must be one of ${engine.sampleRates.join(', ')}`, 'invalid_request_error', 'sample_rate');
      }
      let mp3: Mp3Encoder | null = null;
      if (format === 'mp3') {
        const lame = await loadMp3();
        if (!lame) throw new ApiError(400, 'mp3 needs the optional package @breezystack/lamejs; use wav or pcm', 'invalid_request_error', 'response_format');
        mp3 = new lame.Mp3Encoder(1, sampleRate, 64);
      }
      speak(engine, res, { text: request.input, voice: request.voice, format: format as SpeechFormat, sampleRate, mp3 });
    } catch (error) {
      if (error instanceof ApiError) sendError(res, error);
      else sendError(res, new ApiError(500, 'internal error', 'server_error'));
    }
  };
}

/** Run the utterance; the response belongs to its session until the session ends. */
function speak(
  engine: VoiceEngine,
  res: ServerResponse,
  request: { text: string; voice: string; format: SpeechFormat; sampleRate: number; mp3: Mp3Encoder | null },
): void {
  const contentType = { wav: 'audio/wav', pcm: 'audio/pcm', mp3: 'audio/mpeg' }[request.format];
  let started = false;
  let done = false;
  const startAudio = () => {
    if (started) return;
    started = true;
    res.writeHead(200, {
      'content-type': contentType,
      'x-sample-rate': String(request.sampleRate),
      'cache-control': 'no-store',
    });
    // A streamed WAV cannot know its length: the sizes carry the streaming placeholder.
    if (request.format === 'wav') res.write(wavHeader(request.sampleRate));
  };
  // mp3 is encoded off the hot path in short slices: minutes of audio arriving at once must not hold the loop.
  const mp3 = request.mp3;
  const paced = mp3
    ? new PacedEncoder(
        { encode: (pcm) => mp3.encodeBuffer(pcm), flush: () => mp3.flush() }, // Int8Arrays at run time, whatever the typings say
        (bytes) => res.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
      )
    : null;
  const finish = (error?: WireError) => {
    if (done) return;
    done = true;
    if (!error) {
      startAudio(); // an utterance with no audio still answers with a valid, empty WAV
      if (paced) void paced.end().then(() => res.end());
      else res.end();
    } else if (!started) {
      sendError(res, fromWireError(error));
    } else {
      res.destroy(); // mid-stream: the client must see a broken body, not a short "success"
    }
    session.send({ type: 'CLIENT_GONE' });
  };
  const transport: SessionTransport = {
    send(message: ServerMessage) {
      if (message.type === 'speak.end') {
        if (message.reason === 'completed') finish();
        else finish(message.error ?? { code: 'client_gone', message: `ended: ${message.reason}` });
      } else if (message.type === 'error') {
        finish({ code: message.code, message: message.message });
      }
    },
    sendAudio(_stream, _seq, pcm) {
      if (done) return;
      startAudio();
      if (paced) paced.push(pcm);
      else res.write(int16ToBytes(pcm));
    },
    close({ error, reason }) {
      if (done) return;
      finish({ code: error === 'shutting_down' ? 'shutting_down' : 'internal', message: `connection closed: ${reason}` });
    },
    bufferedBytes: () => res.writableLength + (paced?.pendingBytes ?? 0),
    isOpen: () => !done && !res.destroyed,
  };
  const session: SessionHandle = engine.startSession(transport);
  // The client going away before the end is a STOP: the upstream is released at once.
  res.once('close', () => {
    done = true;
    paced?.cancel();
    session.send({ type: 'CLIENT_GONE' });
  });
  session.send({ type: 'START', sampleRate: request.sampleRate });
  session.send({ type: 'SPEAK', request: { id: 'speech', text: request.text, voice: request.voice, final: true, mode: 'interrupt' } });
}

function fromWireError(error: WireError): ApiError {
  const status = httpStatus(error.code);
  return new ApiError(status, error.message, apiErrorType(status), null, error.code, error.retryAfterMs);
}

function refusal(code: ErrorCode, message: string): ApiError {
  const status = httpStatus(code);
  return new ApiError(status, message, apiErrorType(status), null, code);
}

function apiErrorType(status: number): ApiErrorType {
  return status === 429 ? 'rate_limit_error' : status < 500 ? 'invalid_request_error' : 'server_error';
}

function sendError(res: ServerResponse, error: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  // A body left unread (too large, too slow) must not be parsed as the next request.
  if (error.status === 408 || error.status === 413) headers.connection = 'close';
  if (error.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
  res.writeHead(error.status, headers);
  res.end(JSON.stringify({ error: { message: error.message, type: error.type, param: error.param, code: error.code } }));
}

function bearer(header: string | undefined): string | undefined {
  const match = header ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
  return match?.[1];
}

async function readJson(req: IncomingMessage, limit: number, timeoutMs: number): Promise<unknown> {
  let text: string;
  try {
    text = await readBody(req, limit, timeoutMs);
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw new ApiError(413, error.message, 'invalid_request_error', null, 'payload_too_large');
    if (error instanceof BodyTimeoutError) throw new ApiError(408, error.message, 'invalid_request_error', null, 'request_timeout');
    throw new ApiError(400, 'the request body could not be read', 'invalid_request_error');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'the request body must be JSON', 'invalid_request_error');
  }
}
