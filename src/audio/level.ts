// Signal level of a block of 16-bit PCM, as voice activity frames report it.

/** The level reported for digital silence (and the floor of every level). */
export const silenceDb = -100;

/**
 * RMS level in dBFS: a full-scale square wave is 0, a full-scale sine about -3. Digital
 * silence (and anything quieter than `silenceDb`) is `silenceDb`, so levels stay finite.
 */
export function rmsDbfs(pcm: Int16Array): number {
  if (pcm.length === 0) return silenceDb;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) {
    const s = pcm[i]!;
    sum += s * s;
  }
  if (sum === 0) return silenceDb;
  const db = 10 * Math.log10(sum / pcm.length / (32768 * 32768));
  return db < silenceDb ? silenceDb : db;
}
