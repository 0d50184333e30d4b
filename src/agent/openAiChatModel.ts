// Any OpenAI-compatible chat-completions endpoint, streamed, through the provider's own SDK:
// `openai` for OpenAI itself and for Ollama, vLLM, LM Studio… (by baseURL and model name),
// `groq-sdk` for Groq. Both SDKs are generated from the same shape (a `create(..., { signal })`
// resolving to an async-iterable Stream of chunks, the same error classes), so one adapter
// serves both; each factory below only builds its client and names its error classes.
//
// `maxRetries: 0`: a voice turn cannot wait through an SDK's silent retries (each one a
// new first-token wait while the user hears nothing), and a retry could bring back a reply
// that was already interrupted. A failure ends the turn `failed`; the user speaking again
// is the retry.
import Groq from 'groq-sdk';
import OpenAI from 'openai';
import { apiErrorMessage, retryAfterMs } from '../providers/apiErrors.js';
import { sdkClient } from '../providers/sdkClients.js';
import { ChatModelError, type ChatMessage, type ChatModel, type ChatRequest } from './types.js';

export const groqChatModels = ['llama-3.3-70b-versatile', 'llama-3.1-8b-instant'] as const;
export const defaultGroqChatModel = groqChatModels[0];
export const defaultOpenAiChatModel = 'gpt-4o-mini';

export interface ChatCompletionsOptions {
  apiKey: string;
  /** The model the endpoint serves (`llama-3.3-70b-versatile`, `gpt-4o-mini`, `llama3.2` on Ollama…). */
  model?: string;
  /** Defaults to the SDK's own (OPENAI_BASE_URL / GROQ_BASE_URL or the service); tests point it at the emulator. */
  baseURL?: string;
  /** Upper bound on the reply's length in tokens (default 512): a spoken reply should be short, and it bounds cost. */
  maxTokens?: number;
  /**
   * Which request field carries `maxTokens`. OpenAI and Groq deprecated `max_tokens` for
   * `max_completion_tokens` (OpenAI's newer models refuse the old one); Ollama and older
   * compatible servers know only `max_tokens`. Default: `max_tokens` when `baseURL` points
   * somewhere else than the service, else `max_completion_tokens`.
   */
  maxTokensField?: 'max_tokens' | 'max_completion_tokens';
  temperature?: number;
  /**
   * The SDK's own timeout for the response headers (default 60 s). Only a backstop: the turn's
   * deadlines (withDeadlines) are shorter and apply to the whole stream.
   */
  requestTimeoutMs?: number;
  /** Longest reply kept, in characters (default 8000): past it the request is dropped and the reply ends there. */
  maxReplyChars?: number;
}

/** OpenAI or any server speaking its chat-completions API. */
export function openAiChatModel(options: ChatCompletionsOptions): ChatModel {
  // Quiet: failures reach the turn as typed errors; the SDK's own console logging would bypass the
  // engine's logger and print raw chunks of the conversation.
  const client = sdkClient(OpenAI, { apiKey: options.apiKey, baseURL: options.baseURL, timeoutMs: options.requestTimeoutMs ?? 60_000, quiet: true });
  const model = options.model ?? defaultOpenAiChatModel;
  return chatCompletionsModel({
    name: `openai:${model}`,
    service: options.baseURL ? 'the chat endpoint' : 'openai',
    errors: OpenAI,
    open: (body, signal) => client.chat.completions.create({ ...body, stream: true }, { signal }),
    model,
    options: { ...options, maxTokensField: options.maxTokensField ?? (options.baseURL ? 'max_tokens' : 'max_completion_tokens') },
  });
}

/** Groq's chat models through groq-sdk (`llama-3.3-70b-versatile` by default, `llama-3.1-8b-instant` for speed). */
export function groqChatModel(options: ChatCompletionsOptions): ChatModel {
  const client = sdkClient(Groq, { apiKey: options.apiKey, baseURL: options.baseURL, timeoutMs: options.requestTimeoutMs ?? 60_000, quiet: true }); // quiet: see openAiChatModel
  const model = options.model ?? defaultGroqChatModel;
  return chatCompletionsModel({
    name: `groq:${model}`,
    service: 'groq',
    errors: Groq,
    open: (body, signal) => client.chat.completions.create({ ...body, stream: true }, { signal }),
    model,
    options: { ...options, maxTokensField: options.maxTokensField ?? 'max_completion_tokens' },
  });
}

/** What the adapter reads of a streamed chunk: both SDKs' ChatCompletionChunk have it. */
interface ChunkLike {
  choices?: Array<{ delta?: { content?: string | null } | null; finish_reason?: string | null }> | null;
}

interface RequestBody {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
}

/** The error classes of one SDK (the client class carries them as statics). */
interface SdkErrors {
  APIError: abstract new (...args: never[]) => { status: number | undefined; headers: Headers | undefined; error: unknown };
  APIConnectionTimeoutError: abstract new (...args: never[]) => unknown;
}

interface Flavour {
  name: string;
  /** How messages name the service (never a URL: it could carry credentials). */
  service: string;
  errors: SdkErrors;
  open(body: RequestBody, signal: AbortSignal): PromiseLike<AsyncIterable<ChunkLike>>;
  model: string;
  options: ChatCompletionsOptions;
}

function chatCompletionsModel({ name, service, errors, open, model, options }: Flavour): ChatModel {
  const maxTokens = options.maxTokens ?? 512;
  const maxReplyChars = options.maxReplyChars ?? 8_000;
  const field = options.maxTokensField ?? 'max_completion_tokens';

  async function* stream({ messages, signal }: ChatRequest): AsyncGenerator<string> {
    if (signal.aborted) return;
    const body: RequestBody = {
      model,
      messages: messages.map(({ role, content }) => ({ role, content })),
      [field]: maxTokens,
      ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
    };
    let chunks: AsyncIterable<ChunkLike>;
    try {
      chunks = await open(body, signal);
    } catch (error) {
      if (signal.aborted) return;
      throw chatError(service, errors, error, 'request');
    }
    let finished = false;
    let length = 0;
    try {
      // Leaving this loop early (return, throw, the consumer's break) makes the SDK abort the request.
      for await (const chunk of chunks) {
        if (signal.aborted) return;
        const choice = chunk.choices?.[0];
        const text = choice?.delta?.content;
        if (typeof text === 'string' && text.length > 0) {
          const room = maxReplyChars - length;
          length += text.length;
          yield text.length <= room ? text : text.slice(0, room);
          if (length >= maxReplyChars) return; // a server ignoring max tokens: keep what fits
        }
        if (choice?.finish_reason) finished = true;
      }
    } catch (error) {
      if (signal.aborted) return;
      throw chatError(service, errors, error, 'stream');
    }
    if (signal.aborted) return; // the SDKs end an aborted stream quietly
    // A body that ends cleanly without a finish_reason was cut short (a proxy, a crash).
    if (!finished) throw new ChatModelError('model_failed', `${service} ended the reply before it was complete`);
  }

  return { name, stream };
}

/** Map one SDK's errors onto the model codes. Messages name the status and the API's words, never the key. */
function chatError(service: string, errors: SdkErrors, error: unknown, during: 'request' | 'stream'): ChatModelError {
  if (error instanceof ChatModelError) return error;
  if (error instanceof errors.APIConnectionTimeoutError) return new ChatModelError('model_timeout', `${service} did not answer the request in time`);
  if (error instanceof errors.APIError) {
    const { status, headers } = error;
    if (status === 401 || status === 403) return new ChatModelError('model_unavailable', `${service} refused the credentials (HTTP ${status})`);
    if (status === 404) return new ChatModelError('model_unavailable', `${service} does not serve that model (HTTP 404): ${apiErrorMessage(error.error)}`);
    if (status === 429) return new ChatModelError('model_busy', `${service} rate limit reached`, retryAfterMs(headers));
    if (status === 400 || status === 413 || status === 422) {
      return new ChatModelError('model_failed', `${service} rejected the request (HTTP ${status}): ${apiErrorMessage(error.error)}`);
    }
    if (typeof status === 'number') return new ChatModelError('model_failed', `${service} failed (HTTP ${status})`);
    // No status: an error the API sent inside the stream, or the connection failing.
    if (during === 'stream' && error.error !== undefined) return new ChatModelError('model_failed', `${service} reported an error mid-reply: ${apiErrorMessage(error.error)}`);
    return new ChatModelError('model_failed', `${service} could not be reached`);
  }
  if (error instanceof SyntaxError) return new ChatModelError('model_failed', `${service} sent a malformed chunk`);
  return new ChatModelError('model_failed', during === 'stream' ? `${service} reply stream broke off` : `${service} could not be reached`);
}
