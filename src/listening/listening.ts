// The engine's listening stack from real parts: the WebRTC VAD, the mic gate (shape, Opus,
// real-time budget) and the recognizers this machine has: PocketSphinx when Debian's packages
// are installed, Groq Whisper when GROQ_API_KEY is set. Null when nothing can hear.
import type { ListenLimits } from '../../machines/types.js';
import type { ListenOptions } from '../engine/voiceEngine.js';
import type { MicInput as MicGate } from './listenerHost.js';
import { MicInput, type MicInputOptions } from './micInput.js';
import { findPocketSphinx, PocketSphinxRecognizer, type PocketSphinxOptions } from './pocketsphinx/index.js';
import type { SpeechRecognizer } from './types.js';
import { loadWebRtcVad, type WebRtcVadOptions } from './webRtcVad.js';

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
  vad?: WebRtcVadOptions;
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

export async function createListening(config: ListeningConfig = {}): Promise<ListeningSetup> {
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
  const vad = await loadWebRtcVad();
  const options: ListenOptions = {
    recognizers,
    createVad: () => vad.create(config.vad),
    createMicInput: (format) => micGate(new MicInput(format as ConstructorParameters<typeof MicInput>[0], config.micInput)),
    formats: [
      { encoding: 'pcm_s16le', sampleRate: 16_000 },
      { encoding: 'opus', sampleRate: 16_000 },
    ],
    ...(config.limits ? { limits: config.limits } : {}),
  };
  return { options, summary: `listening: ${recognizers.map((r) => `${r.name} (${r.languages.join(', ')})`).join(', ')}, WebRTC VAD` };
}
