// The audio the provider emulators "speak": deterministic for a given text, so a test can
// compare, sample for sample, what a client received with what the upstream sent.
// Speech-like on purpose (a voiced tone with syllable-rate envelope, silent gaps between
// words), so it is pleasant enough for the demo's offline mode and not compressible to nothing.

/** Milliseconds of audio per character of text. */
export const emulatedMsPerChar = 45;

export function emulatedSpeech(text: string, sampleRate: number): Int16Array {
  return new EmulatedSpeech(text, sampleRate).all();
}

/**
 * The same speech, computed a slice at a time: an emulator streaming in real time makes only
 * what it sends next, so its first byte does not wait for the whole utterance to be computed
 * (milliseconds of CPU per sentence, which under load would count against the gateway).
 */
export class EmulatedSpeech {
  readonly length: number;
  private readonly trimmed: string;
  private readonly pitch: number;
  private readonly perChar: number;
  private whole: Int16Array | null = null;

  constructor(text: string, readonly sampleRate: number) {
    this.trimmed = text.trim();
    const ms = Math.max(120, Math.round(this.trimmed.length * emulatedMsPerChar));
    this.length = Math.round((sampleRate * ms) / 1000);
    this.pitch = 110 + (hash(this.trimmed) % 90); // Hz
    this.perChar = this.length / Math.max(1, this.trimmed.length);
  }

  /** Samples [start, end), computed now (or cut from the whole, once that exists). */
  slice(start: number, end: number): Int16Array {
    const to = Math.min(end, this.length);
    if (this.whole) return this.whole.subarray(start, to);
    const out = new Int16Array(Math.max(0, to - start));
    const { trimmed, sampleRate, pitch, perChar } = this;
    for (let i = start; i < to; i++) {
      const ch = trimmed.charCodeAt(Math.min(trimmed.length - 1, Math.floor(i / perChar))) || 32;
      if (ch === 32) continue; // word gap: silence
      const t = i / sampleRate;
      const syllable = 0.5 - 0.5 * Math.cos((2 * Math.PI * (i % perChar)) / perChar);
      const formant = 1 + (ch % 7) * 0.15;
      const v = Math.sin(2 * Math.PI * pitch * t) * 0.6 + Math.sin(2 * Math.PI * pitch * 2.7 * formant * t) * 0.25;
      out[i - start] = Math.round(v * syllable * 9000);
    }
    return out;
  }

  /** Every sample (computed once, then kept). */
  all(): Int16Array {
    this.whole ??= this.slice(0, this.length);
    return this.whole;
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}
