// Every provider the standalone server knows, in one table: its name, the environment
// variable that enables it, how it is built from the environment and how it runs offline
// against its emulator. The CLI's validation, its help and the provider setup all read this
// table, so a new provider is added here and nowhere else.
import { ElevenLabsEmulator } from '../emulators/elevenLabsEmulator.js';
import { GroqEmulator } from '../emulators/groqEmulator.js';
import { elevenLabsProvider, type ElevenLabsVoice } from '../providers/elevenlabs/elevenLabsProvider.js';
import { espeakProvider } from '../providers/espeak/espeakProvider.js';
import { groqProvider } from '../providers/groq/groqProvider.js';
import type { TtsProvider } from '../providers/types.js';
import { GroqWhisperRecognizer } from '../listening/groqWhisper.js';
import type { SpeechRecognizer } from '../listening/types.js';

/** A configuration the server cannot start with; its message is the one line a user sees. */
export class ConfigError extends Error {}

export interface ProviderContext {
  env: NodeJS.ProcessEnv;
  espeakWorkers: number;
}

/** One running provider, with what the start-up line says of it and what stops what it started. */
export interface ProviderInstance {
  provider: TtsProvider;
  summary: string;
  close?: () => Promise<void>;
}

export interface ProviderEntry {
  name: string;
  /** The environment variable holding its key; absent for providers that need none. */
  keyEnv?: string;
  /** Built from the environment; null when it is not configured (no key). */
  fromEnv(context: ProviderContext): ProviderInstance | null;
  /** Built against a local emulator of the service (offline, `--emulators`). */
  emulated?(context: ProviderContext): Promise<ProviderInstance>;
}

export const providerRegistry: readonly ProviderEntry[] = [
  {
    name: 'espeak',
    fromEnv: ({ espeakWorkers }) => ({ provider: espeakProvider({ size: espeakWorkers }), summary: 'espeak (embedded)' }),
  },
  {
    name: 'groq',
    keyEnv: 'GROQ_API_KEY',
    fromEnv: ({ env }) =>
      env.GROQ_API_KEY ? { provider: groqProvider({ apiKey: env.GROQ_API_KEY, ...(env.GROQ_BASE_URL ? { baseURL: env.GROQ_BASE_URL } : {}) }), summary: 'groq' } : null,
    emulated: async () => {
      const emulator = new GroqEmulator({ apiKey: 'emulator', realtime: 0.5, firstByteDelayMs: 80 });
      const baseURL = await emulator.listen();
      return { provider: groqProvider({ apiKey: 'emulator', baseURL }), summary: `groq (emulator ${baseURL})`, close: () => emulator.close() };
    },
  },
  {
    name: 'elevenlabs',
    keyEnv: 'ELEVENLABS_API_KEY',
    fromEnv: ({ env }) => (env.ELEVENLABS_API_KEY ? { provider: elevenLabs(env, env.ELEVENLABS_API_KEY, env.ELEVENLABS_BASE_URL), summary: 'elevenlabs' } : null),
    emulated: async ({ env }) => {
      const emulator = new ElevenLabsEmulator({ apiKey: 'emulator', realtime: 0.5, firstByteDelayMs: 60 });
      const baseURL = await emulator.listen();
      return { provider: elevenLabs(env, 'emulator', baseURL), summary: `elevenlabs (emulator ${baseURL})`, close: () => emulator.close() };
    },
  },
];

export const providerNames = providerRegistry.map((p) => p.name);

/** A speech-to-text engine the server can listen with, enabled from the environment like the voices. */
export interface RecognizerEntry {
  name: string;
  keyEnv?: string;
  /** Built from the environment; null when it is not configured (no key). */
  fromEnv(env: NodeJS.ProcessEnv): SpeechRecognizer | null;
}

export const recognizerRegistry: readonly RecognizerEntry[] = [
  {
    name: 'groq',
    keyEnv: 'GROQ_API_KEY',
    // The same key and base URL as Groq's voices: one account, one endpoint.
    fromEnv: (env) =>
      env.GROQ_API_KEY ? new GroqWhisperRecognizer({ apiKey: env.GROQ_API_KEY, ...(env.GROQ_BASE_URL ? { baseURL: env.GROQ_BASE_URL } : {}) }) : null,
  },
];

export function providerEntry(name: string): ProviderEntry | undefined {
  return providerRegistry.find((p) => p.name === name);
}

function elevenLabs(env: NodeJS.ProcessEnv, apiKey: string, baseURL: string | undefined): TtsProvider {
  const voices = env.ELEVENLABS_VOICES ? parseVoices(env.ELEVENLABS_VOICES) : undefined;
  return elevenLabsProvider({
    apiKey,
    ...(baseURL ? { baseURL } : {}),
    ...(env.ELEVENLABS_MODEL ? { modelId: env.ELEVENLABS_MODEL } : {}),
    ...(voices ? { voices } : {}),
  });
}

/** `rachel=21m00Tcm4TlvDq8ikWAM,george=JBFqnCBsd6RMkjVDRZzb` (optionally `:lang` after the id). */
export function parseVoices(spec: string): ElevenLabsVoice[] {
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const m = /^([a-z0-9_-]+)=([A-Za-z0-9]+)(?::([a-z]{2,3}))?$/.exec(entry);
      if (!m) throw new ConfigError(`ELEVENLABS_VOICES: "${entry}" is not name=voiceId[:lang]`);
      return { id: m[1]!, voiceId: m[2]!, ...(m[3] ? { language: m[3] } : {}) };
    });
}
