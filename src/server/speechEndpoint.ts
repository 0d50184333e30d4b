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
import { BodyTooLargeError, readBody } from './readBody.js';

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
  return async function handleSpeech(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (engine.isDraining) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
      const token = bearer(req.headers.authorization);
      if (!engine.authorized(token)) {
        throw new ApiError(401, 'a valid API key is required in the Authorization header (Bearer)', 'invalid_request_error', null, 'invalid_api_key');
      }
      const body = speechRequestSchema.safeParse(await readJson(req, options.maxBodyBytes));
      if (!body.success) {
        const issue = body.error.issues[0]!;
        throw new ApiError(400, issue.message, 'invalid_request_error', issue.path.join('.') || null);
      }
      const request = body.data;
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
  const finish = (error?: WireError) => {
    if (done) return;
    done = true;
    if (!error) {
      startAudio(); // an utterance with no audio still answers with a valid, empty WAV
      if (request.mp3) {
        const tail = request.mp3.flush();
        res.write(Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength));
      }
      res.end();
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
      if (request.mp3) {
        const encoded = request.mp3.encodeBuffer(pcm); // an Int8Array at run time, whatever its typings say
        if (encoded.length > 0) res.write(Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength));
      } else res.write(int16ToBytes(pcm));
    },
    close(_code, reason) {
      if (done) return;
      finish({ code: reason === 'shutting_down' ? 'shutting_down' : 'internal', message: `connection closed: ${reason}` });
    },
    bufferedBytes: () => res.writableLength,
    isOpen: () => !done && !res.destroyed,
  };
  const session: SessionHandle = engine.startSession(transport);
  // The client going away before the end is a STOP: the upstream is released at once.
  res.once('close', () => {
    done = true;
    session.send({ type: 'CLIENT_GONE' });
  });
  session.send({ type: 'START', sampleRate: request.sampleRate });
  session.send({ type: 'SPEAK', request: { id: 'speech', text: request.text, voice: request.voice, final: true, mode: 'interrupt' } });
}

const statusOf: Partial<Record<ErrorCode, number>> = {
  bad_request: 400,
  text_too_long: 400,
  unknown_voice: 400,
  duplicate_id: 400,
  unauthorized: 401,
  payload_too_large: 413,
  rate_limited: 429,
  queue_full: 429,
  provider_auth: 502,
  provider_rejected: 502,
  provider_unavailable: 503,
  provider_busy: 503,
  shutting_down: 503,
  first_audio_timeout: 504,
  upstream_stalled: 504,
  utterance_timeout: 504,
  provider_timeout: 504,
};

function fromWireError(error: WireError): ApiError {
  const status = statusOf[error.code] ?? 500;
  const type: ApiErrorType = status === 429 ? 'rate_limit_error' : status < 500 ? 'invalid_request_error' : 'server_error';
  return new ApiError(status, error.message, type, null, error.code, error.retryAfterMs);
}

function sendError(res: ServerResponse, error: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (error.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(error.retryAfterMs / 1000)));
  res.writeHead(error.status, headers);
  res.end(JSON.stringify({ error: { message: error.message, type: error.type, param: error.param, code: error.code } }));
}

function bearer(header: string | undefined): string | undefined {
  const match = header ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
  return match?.[1];
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  let text: string;
  try {
    text = await readBody(req, limit);
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw new ApiError(413, error.message, 'invalid_request_error', null, 'payload_too_large');
    throw new ApiError(400, 'the request body could not be read', 'invalid_request_error');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, 'the request body must be JSON', 'invalid_request_error');
  }
}
