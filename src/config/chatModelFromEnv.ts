// Which language model writes the agent's replies, from the environment. Like the speech
// providers (./providersFromEnv.ts), a key turns a service on and nothing configured means the
// embedded default: the echo model, so the offline demo still closes the loop.
//
// Environment:
//   VOXLINE_CHAT            `groq` | `openai` | `echo`: choose explicitly (otherwise the first
//                           that applies below).
//   VOXLINE_CHAT_BASE_URL   An OpenAI-compatible endpoint (Ollama `http://127.0.0.1:11434/v1`,
//                           vLLM, LM Studio…), through the openai SDK. Needs VOXLINE_CHAT_MODEL.
//   VOXLINE_CHAT_API_KEY    The key for VOXLINE_CHAT_BASE_URL (optional: local servers take
//                           none). OPENAI_API_KEY is never sent to a custom endpoint, so a key
//                           meant for OpenAI cannot leak to whatever the URL names.
//   GROQ_API_KEY            Groq's chat models through groq-sdk (GROQ_BASE_URL honoured, as
//                           for Groq speech).
//   OPENAI_API_KEY          OpenAI through the openai SDK (OPENAI_BASE_URL honoured by the SDK).
//   VOXLINE_CHAT_MODEL      The model: default `llama-3.3-70b-versatile` on Groq
//                           (`llama-3.1-8b-instant` is the fast one), `gpt-4o-mini` on OpenAI.
//   VOXLINE_CHAT_MAX_TOKENS Longest reply in tokens (default 512).
//   VOXLINE_CHAT_TEMPERATURE 0..2 (default: the service's).
//   VOXLINE_CHAT_FIRST_TOKEN_MS, VOXLINE_CHAT_TOKEN_GAP_MS, VOXLINE_CHAT_REPLY_MS
//                           The deadlines (defaults 8000, 5000, 60000).
//   VOXLINE_EMULATORS=1     Groq chat against a local chat emulator instead (offline), keys or
//                           not, unless VOXLINE_CHAT=echo.
// Order when VOXLINE_CHAT is unset: VOXLINE_CHAT_BASE_URL (the most deliberate setting), then
// GROQ_API_KEY, then OPENAI_API_KEY, then echo.
import { withDeadlines } from '../agent/deadlines.js';
import { echoChatModel } from '../agent/echoChatModel.js';
import { groqChatModel, openAiChatModel, type ChatCompletionsOptions } from '../agent/openAiChatModel.js';
import type { ChatModel } from '../agent/types.js';
import { ChatEmulator } from '../emulators/chatEmulator.js';
import { ConfigError } from './providerRegistry.js';

export interface ChatModelSetup {
  /** Already behind withDeadlines: the turn uses it as is. */
  model: ChatModel;
  /** For the start-up line; never a key or a URL's credentials. */
  summary: string;
  /** Stops what the setup started (the emulator). Idempotent. */
  close(): Promise<void>;
}

export async function createChatModelFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  { emulators = env.VOXLINE_EMULATORS === '1' }: { emulators?: boolean } = {},
): Promise<ChatModelSetup> {
  const deadlines = {
    firstTokenMs: positive(env, 'VOXLINE_CHAT_FIRST_TOKEN_MS'),
    betweenTokensMs: positive(env, 'VOXLINE_CHAT_TOKEN_GAP_MS'),
    wholeReplyMs: positive(env, 'VOXLINE_CHAT_REPLY_MS'),
  };
  const timed = (model: ChatModel) =>
    withDeadlines(model, Object.fromEntries(Object.entries(deadlines).filter(([, v]) => v !== undefined)));
  const maxTokens = positive(env, 'VOXLINE_CHAT_MAX_TOKENS');
  const temperature = number(env, 'VOXLINE_CHAT_TEMPERATURE', 0, 2);
  const tuning: Omit<ChatCompletionsOptions, 'apiKey'> = {
    ...(env.VOXLINE_CHAT_MODEL ? { model: env.VOXLINE_CHAT_MODEL } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
    ...(deadlines.wholeReplyMs !== undefined ? { requestTimeoutMs: deadlines.wholeReplyMs } : {}),
  };
  const choice = chosen(env);

  // Offline, the full setup: Groq chat against its emulator unless echo was asked for by name.
  if (emulators && env.VOXLINE_CHAT?.trim() !== 'echo') {
    const emulator = new ChatEmulator({ apiKey: 'emulator', firstTokenDelayMs: 150, tokenDelayMs: 30 });
    const baseURL = await emulator.listen();
    const model = timed(groqChatModel({ ...tuning, apiKey: 'emulator', baseURL }));
    let closing: Promise<void> | undefined;
    return { model, summary: `${model.name} (emulator ${baseURL})`, close: () => (closing ??= emulator.close()) };
  }
  const none = () => Promise.resolve();
  switch (choice) {
    case 'endpoint': {
      if (!env.VOXLINE_CHAT_MODEL) throw new ConfigError('VOXLINE_CHAT_BASE_URL needs VOXLINE_CHAT_MODEL (the model name the endpoint serves)');
      const endpoint = safeUrl(env.VOXLINE_CHAT_BASE_URL!);
      // Local servers want no key, but the SDK insists on one: a placeholder that means nothing.
      const model = timed(openAiChatModel({ ...tuning, apiKey: env.VOXLINE_CHAT_API_KEY || 'none', baseURL: endpoint.href }));
      return { model, summary: `${model.name} at ${endpoint.origin}`, close: none };
    }
    case 'groq': {
      if (!env.GROQ_API_KEY) throw new ConfigError('VOXLINE_CHAT=groq needs GROQ_API_KEY');
      const model = timed(groqChatModel({ ...tuning, apiKey: env.GROQ_API_KEY, ...(env.GROQ_BASE_URL ? { baseURL: env.GROQ_BASE_URL } : {}) }));
      return { model, summary: model.name, close: none };
    }
    case 'openai': {
      if (!env.OPENAI_API_KEY) throw new ConfigError('VOXLINE_CHAT=openai needs OPENAI_API_KEY (or VOXLINE_CHAT_BASE_URL for another endpoint)');
      const model = timed(openAiChatModel({ ...tuning, apiKey: env.OPENAI_API_KEY }));
      return { model, summary: model.name, close: none };
    }
    default: {
      const model = timed(echoChatModel());
      return { model, summary: 'echo (embedded: repeats what it heard)', close: none };
    }
  }
}

function chosen(env: NodeJS.ProcessEnv): 'endpoint' | 'groq' | 'openai' | 'echo' {
  const explicit = env.VOXLINE_CHAT?.trim();
  if (explicit) {
    if (explicit === 'echo' || explicit === 'groq') return explicit;
    if (explicit === 'openai') return env.VOXLINE_CHAT_BASE_URL ? 'endpoint' : 'openai';
    throw new ConfigError(`VOXLINE_CHAT: "${explicit}" is not groq, openai or echo`);
  }
  if (env.VOXLINE_CHAT_BASE_URL) return 'endpoint';
  if (env.GROQ_API_KEY) return 'groq';
  if (env.OPENAI_API_KEY) return 'openai';
  return 'echo';
}

/** An http(s) URL without credentials in it (they would end up in logs; the key has its own variable). */
function safeUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('VOXLINE_CHAT_BASE_URL is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('VOXLINE_CHAT_BASE_URL must be http(s)');
  if (url.username || url.password) throw new ConfigError('VOXLINE_CHAT_BASE_URL must not carry credentials; use VOXLINE_CHAT_API_KEY');
  return url;
}

function positive(env: NodeJS.ProcessEnv, name: string): number | undefined {
  return number(env, name, 1, Number.MAX_SAFE_INTEGER, true);
}

function number(env: NodeJS.ProcessEnv, name: string, min: number, max: number, integer = false): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new ConfigError(`${name}: "${raw}" is not ${integer ? 'an integer' : 'a number'} in ${min}..${max === Number.MAX_SAFE_INTEGER ? '∞' : max}`);
  }
  return value;
}
