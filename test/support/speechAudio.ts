// Microphone audio for listening tests: sentences spoken by the embedded voice (eSpeak),
// resampled to the listen rate and padded with silence, as a client would stream them up.
import { concatInt16 } from '../../src/audio/pcm.js';
import { StreamResampler } from '../../src/audio/resampler.js';
import { EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { listenSampleRate } from '../../src/listening/types.js';

export interface SpeechRenderer {
  /** `text` spoken by `voice` at 16 kHz mono, with `leadMs` of silence before and `tailMs` after. */
  render(text: string, options?: { voice?: string; leadMs?: number; tailMs?: number; gainDb?: number }): Promise<Int16Array>;
  close(): Promise<void>;
}

export function silence(ms: number, rate = listenSampleRate): Int16Array {
  return new Int16Array(Math.round((ms * rate) / 1000));
}

/** Samples scaled by `db` decibels (negative: quieter), clipped to 16 bits. */
export function gain(pcm: Int16Array, db: number): Int16Array {
  const k = 10 ** (db / 20);
  const out = new Int16Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(pcm[i]! * k)));
  return out;
}

/** Cut `pcm` into frames of `frameMs` (the last may be shorter), as a client's microphone sends them. */
export function frames(pcm: Int16Array, frameMs = 20, rate = listenSampleRate): Int16Array[] {
  const size = Math.round((frameMs * rate) / 1000);
  const out: Int16Array[] = [];
  for (let i = 0; i < pcm.length; i += size) out.push(pcm.subarray(i, Math.min(pcm.length, i + size)));
  return out;
}

export async function speechRenderer(): Promise<SpeechRenderer> {
  const provider = new EspeakProvider({ size: 1 });
  await provider.ready();
  return {
    async render(text, { voice = 'en-us', leadMs = 300, tailMs = 800, gainDb = 0 } = {}) {
      const parts: Int16Array[] = [];
      let rate = 0;
      for await (const block of provider.synthesize({ text, voice, signal: new AbortController().signal })) {
        parts.push(block.samples);
        rate = block.sampleRate;
      }
      const resampler = await StreamResampler.create(rate, listenSampleRate);
      try {
        const speech = concatInt16([resampler.process(concatInt16(parts)), resampler.flush()]);
        return concatInt16([silence(leadMs), gainDb === 0 ? speech : gain(speech, gainDb), silence(tailMs)]);
      } finally {
        resampler.destroy();
      }
    },
    close: () => provider.close(),
  };
}
