// Speech-to-text through Groq's hosted Whisper, with the official groq-sdk. Whisper takes a
// whole file, not a stream: a job buffers its turn's PCM (bounded), and `finish()` sends it
// as one WAV in one multipart request. No partials.
//
// Decisions, briefly:
// - One request per turn and no retry inside it (`maxRetries: 0`). A retry re-uploads the
//   whole turn while the user waits, Groq bills each request (10 s minimum), a 429's
//   retry-after is usually longer than a turn's patience, and a 5xx retried at once mostly
//   fails again. The engine, which sees every session, decides whether to try again.
// - A wall deadline per request covers headers AND body: the SDK's own `timeout` stops at the
//   headers, so a body that never completes would otherwise hang the turn.
// - The response is read as raw bytes, bounded, and parsed here: the SDK would buffer any
//   body whole, and it returns non-JSON bodies as strings instead of failing.
// - 401/403 map to provider_auth, not recognizer_unavailable: a refused key is an operator's
//   problem that no waiting fixes, and it is the code the TTS adapter already uses for it.
import Groq, { toFile } from 'groq-sdk';
import type { ErrorCode } from '../../machines/types.js';
import { concatInt16, int16ToBytes, wavHeader } from '../audio/pcm.js';
import { apiErrorMessage, retryAfterMs } from '../providers/apiErrors.js';
import { sdkClient } from '../providers/sdkClients.js';
import { listenSampleRate, RecognitionError, type RecognitionJob, type RecognitionRequest, type SpeechRecognizer } from './types.js';

export const groqWhisperModel = 'whisper-large-v3-turbo';
export const groqWhisperLanguages = ['en', 'ar'] as const;

export interface GroqWhisperOptions {
  apiKey: string;
  /** Defaults to the SDK's (GROQ_BASE_URL or https://api.groq.com); tests point it at the emulator. */
  baseURL?: string;
  /** Default whisper-large-v3-turbo. */
  model?: string;
  /** Wall time for one request, upload to last byte of the answer (default 10 s). */
  requestTimeoutMs?: number;
  /** Longest turn a job buffers (default 60 s of 16 kHz audio, 1.92 MB); past it the job fails. */
  maxAudioMs?: number;
  /** Most characters of `phrases` sent as Whisper's prompt (default 300; Whisper reads at most 224 tokens). */
  maxPromptChars?: number;
  /** Largest response body accepted (default 64 KiB; a minute's transcript is a few KB). */
  maxResponseBytes?: number;
}

/** Thrown by `finish()` after `cancel()` (or the request's signal): the turn no longer wants an answer. */
function cancelled(): Error {
  return new DOMException('recognition cancelled', 'AbortError');
}

export class GroqWhisperRecognizer implements SpeechRecognizer {
  readonly name = 'groq';
  readonly languages: readonly string[] = groqWhisperLanguages;
  readonly partials = false;
  private readonly client: Groq;
  private readonly settings: Required<Omit<GroqWhisperOptions, 'apiKey' | 'baseURL'>>;
  private readonly jobs = new Set<WhisperJob>();
  private closed = false;

  constructor(options: GroqWhisperOptions) {
    this.client = sdkClient(Groq, { apiKey: options.apiKey, baseURL: options.baseURL, timeoutMs: options.requestTimeoutMs ?? 10_000 });
    this.settings = {
      model: options.model ?? groqWhisperModel,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      maxAudioMs: options.maxAudioMs ?? 60_000,
      maxPromptChars: options.maxPromptChars ?? 300,
      maxResponseBytes: options.maxResponseBytes ?? 64 * 1024,
    };
  }

  start(request: RecognitionRequest): RecognitionJob {
    const job: WhisperJob = new WhisperJob(this.client, this.settings, request, () => this.jobs.delete(job));
    if (this.closed) job.fail(new RecognitionError('recognizer_unavailable', 'the groq recognizer is closed'));
    else if (!this.languages.includes(request.language)) job.fail(new RecognitionError('recognizer_unavailable', `groq whisper is not set up for "${request.language}"`));
    else if (request.signal.aborted) job.cancel();
    else {
      this.jobs.add(job);
      request.signal.addEventListener('abort', job.onAbort, { once: true });
    }
    return job;
  }

  ready(): Promise<void> {
    return Promise.resolve();
  }

  /** Cancels every open job (their requests are aborted). Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    for (const job of [...this.jobs]) job.cancel();
    this.jobs.clear();
    return Promise.resolve();
  }

  /** Jobs started and not yet settled or cancelled (for leak checks). */
  get openJobs(): number {
    return this.jobs.size;
  }
}

type Settings = Required<Omit<GroqWhisperOptions, 'apiKey' | 'baseURL'>>;

class WhisperJob implements RecognitionJob {
  private chunks: Int16Array[] = [];
  private samples = 0;
  private readonly maxSamples: number;
  private failure: RecognitionError | null = null;
  private cancelledFlag = false;
  private timedOut = false;
  private result: Promise<string> | null = null;
  /** Aborts the HTTP request: by cancel() or by the wall deadline. */
  private readonly http = new AbortController();
  /** Listens on the request's signal (added by the recognizer, removed at cleanup). */
  readonly onAbort = () => this.cancel();

  constructor(
    private readonly client: Groq,
    private readonly settings: Settings,
    private readonly request: RecognitionRequest,
    private readonly release: () => void,
  ) {
    this.maxSamples = Math.floor((settings.maxAudioMs * listenSampleRate) / 1000);
  }

  write(pcm: Int16Array): void {
    if (this.result || this.cancelledFlag || this.failure) return;
    if (this.samples + pcm.length > this.maxSamples) {
      // Fail now and drop what was kept: a turn that never ends must not grow memory.
      this.fail(new RecognitionError('recognizer_failed', `the turn is longer than ${this.settings.maxAudioMs} ms, the most one request carries`));
      return;
    }
    // A copy: the caller may reuse its frame buffer.
    this.chunks.push(pcm.slice());
    this.samples += pcm.length;
  }

  finish(): Promise<string> {
    this.result ??= this.run();
    return this.result;
  }

  cancel(): void {
    if (this.cancelledFlag) return;
    this.cancelledFlag = true;
    this.http.abort();
    this.cleanup();
  }

  /** Fails the job before any request (bound passed, recognizer closed, language). */
  fail(error: RecognitionError): void {
    if (this.failure || this.cancelledFlag) return;
    this.failure = error;
    this.cleanup();
  }

  private cleanup(): void {
    this.chunks = [];
    this.request.signal.removeEventListener('abort', this.onAbort);
    this.release();
  }

  private async run(): Promise<string> {
    if (this.cancelledFlag) throw cancelled();
    if (this.failure) throw this.failure;
    // Nothing to hear: no request (Groq refuses audio under 10 ms, and bills a request anyway).
    if (this.samples < listenSampleRate / 100) {
      this.cleanup();
      return '';
    }
    const pcm = concatInt16(this.chunks);
    this.chunks = [];
    const deadline = setTimeout(() => {
      this.timedOut = true;
      this.http.abort();
    }, this.settings.requestTimeoutMs);
    try {
      const wav = Buffer.concat([wavHeader(listenSampleRate, pcm.byteLength), int16ToBytes(pcm)]);
      const file = await toFile(wav, 'turn.wav', { type: 'audio/wav' });
      const prompt = promptFrom(this.request.phrases, this.settings.maxPromptChars);
      const response = await this.client.audio.transcriptions
        .create(
          { file, model: this.settings.model, language: this.request.language, response_format: 'json', ...(prompt ? { prompt } : {}) },
          { signal: this.http.signal, timeout: this.settings.requestTimeoutMs, maxRetries: 0 },
        )
        .asResponse();
      const body = await readBounded(response, this.settings.maxResponseBytes);
      if (this.cancelledFlag) throw cancelled();
      return transcriptText(body);
    } catch (error) {
      // Cancelled wins over whatever the abort surfaced as: the turn asked for nothing more.
      if (this.cancelledFlag) throw cancelled();
      if (this.timedOut) throw new RecognitionError('recognizer_timeout', `groq whisper gave no answer within ${this.settings.requestTimeoutMs} ms`);
      throw recognitionError(error);
    } finally {
      clearTimeout(deadline);
      this.cleanup();
    }
  }
}

/** The phrases as one hint, whole phrases only, at most `max` characters. */
export function promptFrom(phrases: readonly string[] | undefined, max: number): string {
  let prompt = '';
  for (const raw of phrases ?? []) {
    const phrase = raw.trim();
    if (!phrase) continue;
    const next = prompt ? `${prompt}, ${phrase}` : phrase;
    if (next.length > max) break;
    prompt = next;
  }
  return prompt;
}

/** The body as text, refused past `limit` bytes (the rest is not read). */
async function readBounded(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) throw new RecognitionError('recognizer_failed', `groq whisper sent an answer over ${limit} bytes`);
      parts.push(value);
    }
  } finally {
    // Releases the response (and its socket) on success, failure or abort.
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(parts).toString('utf8');
}

function transcriptText(body: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new RecognitionError('recognizer_failed', 'groq whisper sent an answer that is not JSON');
  }
  const text = (parsed as { text?: unknown } | null)?.text;
  if (typeof text !== 'string') throw new RecognitionError('recognizer_failed', 'groq whisper sent an answer without text');
  return text.trim();
}

const unreachable = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Map the SDK's errors (and a broken body) onto the listening codes. Messages never carry the key. */
export function recognitionError(error: unknown): RecognitionError {
  if (error instanceof RecognitionError) return error;
  if (error instanceof Groq.RateLimitError) return new RecognitionError('recognizer_busy', 'groq whisper rate limit reached', retryAfterMs(error.headers));
  if (error instanceof Groq.AuthenticationError || error instanceof Groq.PermissionDeniedError) {
    return new RecognitionError('provider_auth', `groq refused the credentials (HTTP ${error.status})`);
  }
  if (error instanceof Groq.APIConnectionTimeoutError) return new RecognitionError('recognizer_timeout', 'groq whisper gave no answer in time');
  if (error instanceof Groq.APIConnectionError) {
    // Nobody answered at all (down, DNS) versus a connection that broke mid-request.
    const code: ErrorCode = unreachable.has(causeCode(error) ?? '') ? 'recognizer_unavailable' : 'recognizer_failed';
    return new RecognitionError(code, code === 'recognizer_unavailable' ? 'groq could not be reached' : 'the connection to groq broke');
  }
  if (error instanceof Groq.APIError && typeof error.status === 'number') {
    const detail = error.status < 500 ? `: ${apiErrorMessage(error.error)}` : '';
    return new RecognitionError('recognizer_failed', `groq whisper failed (HTTP ${error.status})${detail}`);
  }
  // A body cut off mid-read surfaces as undici's TypeError('terminated') or a socket error.
  return new RecognitionError('recognizer_failed', 'groq whisper answer broke off');
}

function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
