// Groq's Orpheus TTS through the official groq-sdk. One `audio.speech.create` per text
// piece (Groq takes at most 200 characters), the WAV response read incrementally as it
// streams in. The request's AbortSignal belongs to the utterance, so STOP and supersede
// cancel the HTTP request itself. `maxRetries: 0`: an SDK retry could bring back a
// stopped utterance; whether to retry is the engine's decision alone.
import Groq from 'groq-sdk';
import type { VoiceInfo } from '../../../machines/types.js';
import { WavFormatError, WavStreamParser } from '../../audio/wavStreamParser.js';
import { apiErrorMessage, retryAfterMs } from '../apiErrors.js';
import { sdkClient } from '../sdkClients.js';
import { ProviderError, type PcmBlock, type SynthesisRequest, type TtsProvider } from '../types.js';

export const groqEnglishModel = 'canopylabs/orpheus-v1-english';
export const groqArabicModel = 'canopylabs/orpheus-arabic-saudi';
export const groqEnglishVoices = ['autumn', 'diana', 'hannah', 'austin', 'daniel', 'troy'] as const;
export const groqArabicVoices = ['fahad', 'sultan', 'lulwa', 'noura'] as const;
/** Groq rejects longer inputs. */
export const groqMaxInputChars = 200;

export interface GroqProviderOptions {
  apiKey: string;
  /** Defaults to the SDK's (GROQ_BASE_URL or https://api.groq.com); tests point it at the emulator. */
  baseURL?: string;
  /** Time allowed for the response headers of one request (default 30 s); the session's own timers bound the rest. */
  requestTimeoutMs?: number;
}

export function groqProvider(options: GroqProviderOptions): TtsProvider {
  const client = sdkClient(Groq, { apiKey: options.apiKey, baseURL: options.baseURL, timeoutMs: options.requestTimeoutMs ?? 30_000 });
  const arabic = new Set<string>(groqArabicVoices);
  const voices: VoiceInfo[] = [
    ...groqEnglishVoices.map((id) => ({ id, language: 'en', provider: 'groq' })),
    ...groqArabicVoices.map((id) => ({ id, language: 'ar', provider: 'groq' })),
  ];

  async function* synthesize({ text, voice, signal }: SynthesisRequest): AsyncGenerator<PcmBlock> {
    let response: Response;
    try {
      response = await client.audio.speech.create(
        { model: arabic.has(voice) ? groqArabicModel : groqEnglishModel, input: text, voice, response_format: 'wav' },
        { signal },
      );
    } catch (error) {
      if (signal.aborted) return;
      throw groqError(error);
    }
    if (!response.body) throw new ProviderError('provider_unavailable', 'groq returned an empty response');
    const reader = response.body.getReader();
    const parser = new WavStreamParser();
    // The next block of samples, or null at the end. Read and parsed in a function of its own, and
    // let go of before the wait for the next: see ../iteration.ts (the bytes read would stay too).
    const nextBlock = async (): Promise<PcmBlock | null> => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return null;
        const samples = parser.push(value);
        if (samples.length > 0) return { samples, sampleRate: parser.format!.sampleRate };
      }
    };
    try {
      let block = await nextBlock();
      while (block) {
        yield block;
        block = null;
        block = await nextBlock();
      }
      parser.end();
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof WavFormatError) throw new ProviderError('provider_unavailable', `groq sent malformed audio: ${error.message}`);
      throw new ProviderError('provider_unavailable', 'groq audio stream broke off');
    } finally {
      // Releases the HTTP response (and its socket) whether we finished, failed or were stopped.
      await reader.cancel().catch(() => {});
    }
  }

  return {
    name: 'groq',
    voices,
    maxPieceChars: groqMaxInputChars,
    synthesize,
    ready: () => Promise.resolve(),
    isReady: () => true,
    close: () => Promise.resolve(),
  };
}

/** Map the SDK's error classes onto the engine's codes. Messages never carry the key. */
export function groqError(error: unknown): ProviderError {
  if (error instanceof Groq.RateLimitError) {
    return new ProviderError('rate_limited', 'groq rate limit reached', retryAfterMs(error.headers));
  }
  if (error instanceof Groq.AuthenticationError || error instanceof Groq.PermissionDeniedError) {
    return new ProviderError('provider_auth', `groq refused the credentials (HTTP ${error.status})`);
  }
  if (error instanceof Groq.BadRequestError || error instanceof Groq.UnprocessableEntityError || error instanceof Groq.NotFoundError) {
    return new ProviderError('provider_rejected', `groq rejected the request (HTTP ${error.status}): ${apiErrorMessage(error.error)}`);
  }
  if (error instanceof Groq.APIError && typeof error.status === 'number') {
    return new ProviderError('provider_unavailable', `groq failed (HTTP ${error.status})`);
  }
  return new ProviderError('provider_unavailable', 'groq could not be reached');
}
