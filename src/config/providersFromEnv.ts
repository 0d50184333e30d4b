// Which upstream providers the standalone server runs, from the environment. The embedded
// voice is always there (first, so it stays the default); Groq and ElevenLabs join when
// their keys are set. VOXLINE_EMULATORS=1 runs both against local emulators instead: the
// full multi-provider setup, offline.
import { ElevenLabsEmulator } from '../emulators/elevenLabsEmulator.js';
import { GroqEmulator } from '../emulators/groqEmulator.js';
import { elevenLabsProvider, type ElevenLabsVoice } from '../providers/elevenlabs/elevenLabsProvider.js';
import { espeakProvider } from '../providers/espeak/espeakProvider.js';
import { groqProvider } from '../providers/groq/groqProvider.js';
import type { TtsProvider } from '../providers/types.js';

export interface ProviderSetup {
  providers: TtsProvider[];
  /** Human-readable, for the start-up line (never a key). */
  summary: string[];
  /** Stops whatever the setup started (emulators). */
  close(): Promise<void>;
}

/** A configuration the server cannot start with; its message is the one line a user sees. */
export class ConfigError extends Error {}

export async function providersFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  {
    espeakWorkers = 2,
    emulators = env.VOXLINE_EMULATORS === '1',
    only,
  }: { espeakWorkers?: number; emulators?: boolean; only?: string[] } = {},
): Promise<ProviderSetup> {
  const wanted = (name: string) => !only || only.includes(name);
  const providers: TtsProvider[] = wanted('espeak') ? [espeakProvider({ size: espeakWorkers })] : [];
  const summary = wanted('espeak') ? ['espeak (embedded)'] : [];
  const closers: (() => Promise<void>)[] = [];
  let groq = env.GROQ_API_KEY && wanted('groq') ? { apiKey: env.GROQ_API_KEY, baseURL: env.GROQ_BASE_URL } : null;
  let eleven = env.ELEVENLABS_API_KEY && wanted('elevenlabs') ? { apiKey: env.ELEVENLABS_API_KEY, baseURL: env.ELEVENLABS_BASE_URL } : null;
  if (emulators && wanted('groq')) {
    const g = new GroqEmulator({ apiKey: 'emulator', realtime: 0.5, firstByteDelayMs: 80 });
    groq = { apiKey: 'emulator', baseURL: await g.listen() };
    closers.push(() => g.close());
  }
  if (emulators && wanted('elevenlabs')) {
    const e = new ElevenLabsEmulator({ apiKey: 'emulator', realtime: 0.5, firstByteDelayMs: 60 });
    eleven = { apiKey: 'emulator', baseURL: await e.listen() };
    closers.push(() => e.close());
  }
  if (groq) {
    providers.push(groqProvider({ apiKey: groq.apiKey, ...(groq.baseURL ? { baseURL: groq.baseURL } : {}) }));
    summary.push(emulators ? `groq (emulator ${groq.baseURL})` : 'groq');
  }
  if (eleven) {
    const voices = env.ELEVENLABS_VOICES ? parseVoices(env.ELEVENLABS_VOICES) : undefined;
    providers.push(
      elevenLabsProvider({
        apiKey: eleven.apiKey,
        ...(eleven.baseURL ? { baseURL: eleven.baseURL } : {}),
        ...(env.ELEVENLABS_MODEL ? { modelId: env.ELEVENLABS_MODEL } : {}),
        ...(voices ? { voices } : {}),
      }),
    );
    summary.push(emulators ? `elevenlabs (emulator ${eleven.baseURL})` : 'elevenlabs');
  }
  return {
    providers,
    summary,
    close: async () => {
      await Promise.all(closers.map((c) => c()));
    },
  };
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
