// Listening figure: PocketSphinx CPU per listened audio-second, with a grammar of the expected
// phrases and with the general language model, measured as the worker processes' own CPU
// (process.cpuUsage reported by the worker at warm-up and after every final). Forked by
// bench/run.ts; sends one message with the figures. argv[2]: sentences to listen to.
import { PocketSphinxRecognizer } from '../src/listening/pocketsphinx/index.js';
import { listenSampleRate } from '../src/listening/types.js';
import { frames, speechRenderer } from '../test/support/speechAudio.js';
import { wordErrorRate } from '../test/support/wordErrorRate.js';

const phrases = [
  'turn on the kitchen lights',
  'turn off the bedroom lights',
  'what time is it',
  'set a timer for 5 minutes',
  'play some music',
  'stop the music',
  'what is the weather like today',
  'call my mother',
  'open the garage door',
  'close the front door',
  'read my messages',
  'how far is the airport',
];
const count = Math.max(1, Math.min(phrases.length, Number(process.argv[2] ?? phrases.length)));

const renderer = await speechRenderer();
const audio: Int16Array[] = [];
for (const phrase of phrases.slice(0, count)) audio.push(await renderer.render(phrase));
await renderer.close();
const audioSeconds = audio.reduce((n, pcm) => n + pcm.length, 0) / listenSampleRate;

const recognizer = new PocketSphinxRecognizer({ size: 1 });
const began = performance.now();
await recognizer.ready();
const startMs = performance.now() - began;

async function pass(grammar: boolean): Promise<{ cpuMsPerAudioSecond: number; wallMsPerAudioSecond: number; wer: number }> {
  const cpuBefore = recognizer.stats().workerCpuMs;
  const wallBefore = performance.now();
  const pairs: Array<{ reference: string; hypothesis: string }> = [];
  for (const [i, pcm] of audio.entries()) {
    const job = recognizer.start({ language: 'en', ...(grammar ? { phrases } : {}), signal: new AbortController().signal });
    for (const frame of frames(pcm, 20)) job.write(frame);
    pairs.push({ reference: phrases[i]!, hypothesis: await job.finish() });
  }
  return {
    cpuMsPerAudioSecond: (recognizer.stats().workerCpuMs - cpuBefore) / audioSeconds,
    wallMsPerAudioSecond: (performance.now() - wallBefore) / audioSeconds,
    wer: wordErrorRate(pairs),
  };
}

try {
  const grammar = await pass(true);
  const general = await pass(false);
  process.send!({ type: 'listening', sentences: count, audioSeconds, startMs, grammar, general });
} finally {
  await recognizer.close();
}
