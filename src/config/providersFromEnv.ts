// Which upstream providers the standalone server runs, from the environment. The embedded
// voice is always there (first, so it stays the default); the others join when their keys
// are set. VOXLINE_EMULATORS=1 runs each against its local emulator instead: the full
// multi-provider setup, offline. The providers themselves are in ./providerRegistry.ts.
import type { SpeechRecognizer } from '../listening/types.js';
import type { TtsProvider } from '../providers/types.js';
import { providerRegistry, recognizerRegistry, type ProviderInstance } from './providerRegistry.js';

export { ConfigError, parseVoices } from './providerRegistry.js';

export interface ProviderSetup {
  providers: TtsProvider[];
  /** Human-readable, for the start-up line (never a key). */
  summary: string[];
  /** Stops whatever the setup started (emulators). */
  close(): Promise<void>;
}

export async function providersFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  {
    espeakWorkers = 2,
    emulators = env.VOXLINE_EMULATORS === '1',
    only,
  }: { espeakWorkers?: number; emulators?: boolean; only?: string[] } = {},
): Promise<ProviderSetup> {
  const context = { env, espeakWorkers };
  const started: ProviderInstance[] = [];
  for (const entry of providerRegistry) {
    if (only && !only.includes(entry.name)) continue;
    const instance = emulators && entry.emulated ? await entry.emulated(context) : entry.fromEnv(context);
    if (instance) started.push(instance);
  }
  return {
    providers: started.map((s) => s.provider),
    summary: started.map((s) => s.summary),
    close: async () => {
      await Promise.all(started.map((s) => s.close?.()));
    },
  };
}

/**
 * The speech recognizers whose keys are set (GROQ_API_KEY: Groq Whisper for 'en' and 'ar'),
 * in the table's order. Nothing is started: the caller closes what it takes.
 */
export function recognizersFromEnv(env: NodeJS.ProcessEnv = process.env): SpeechRecognizer[] {
  return recognizerRegistry.flatMap((entry) => entry.fromEnv(env) ?? []);
}
