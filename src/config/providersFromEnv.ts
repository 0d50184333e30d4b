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

export class ConfigError extends Error {}

export async function providersFromEnv(env: NodeJS.ProcessEnv = process.env, espeakWorkers = 2): Promise<ProviderSetup> {
  const providers: TtsProvider[] = [espeakProvider({ size: espeakWorkers })];
  const summary = ['espeak (embedded)'];
  const closers: (() => Promise<void>)[] = [];
  let groq = env.GROQ_API_KEY ? { apiKey: env.GROQ_API_KEY, baseURL: env.GROQ_BASE_URL } : null;
  let eleven = env.ELEVENLABS_API_KEY ? { apiKey: env.ELEVENLABS_API_KEY, baseURL: env.ELEVENLABS_BASE_URL } : null;
  if (env.VOXLINE_EMULATORS === '1') {
    const g = new GroqEmulator({ apiKey: 'emulator', realtime: 0.5, firstByteDelayMs: 80 });
    const e = new ElevenLabsEmulator({ apiKey: 'emulator', realtime: 0.5, firstByteDelayMs: 60 });
    groq = { apiKey: 'emulator', baseURL: await g.listen() };
    eleven = { apiKey: 'emulator', baseURL: await e.listen() };
    closers.push(() => g.close(), () => e.close());
  }
  if (groq) {
    providers.push(groqProvider({ apiKey: groq.apiKey, ...(groq.baseURL ? { baseURL: groq.baseURL } : {}) }));
    summary.push(env.VOXLINE_EMULATORS === '1' ? `groq (emulator ${groq.baseURL})` : 'groq');
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
    summary.push(env.VOXLINE_EMULATORS === '1' ? `elevenlabs (emulator ${eleven.baseURL})` : 'elevenlabs');
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
