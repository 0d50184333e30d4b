// The audio the provider emulators "speak": deterministic for a given text, so a test can
// compare, sample for sample, what a client received with what the upstream sent.
// Speech-like on purpose (a voiced tone with syllable-rate envelope, silent gaps between
// words), so it is pleasant enough for the demo's offline mode and not compressible to nothing.

/** Milliseconds of audio per character of text. */
export const emulatedMsPerChar = 45;

export function emulatedSpeech(text: string, sampleRate: number): Int16Array {
  const trimmed = text.trim();
  const ms = Math.max(120, Math.round(trimmed.length * emulatedMsPerChar));
  const n = Math.round((sampleRate * ms) / 1000);
  const out = new Int16Array(n);
  const seed = hash(trimmed);
  const pitch = 110 + (seed % 90); // Hz
  const perChar = n / Math.max(1, trimmed.length);
  for (let i = 0; i < n; i++) {
    const ch = trimmed.charCodeAt(Math.min(trimmed.length - 1, Math.floor(i / perChar))) || 32;
    if (ch === 32) continue; // word gap: silence
    const t = i / sampleRate;
    const syllable = 0.5 - 0.5 * Math.cos((2 * Math.PI * (i % perChar)) / perChar);
    const formant = 1 + (ch % 7) * 0.15;
    const v = Math.sin(2 * Math.PI * pitch * t) * 0.6 + Math.sin(2 * Math.PI * pitch * 2.7 * formant * t) * 0.25;
    out[i] = Math.round(v * syllable * 9000);
  }
  return out;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}
