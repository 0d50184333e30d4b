// Offline speech-to-text as the listener meets it: real PocketSphinx worker processes, real
// speech from the embedded voice at 16 kHz, streamed in 20 ms frames. Nothing is mocked.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PocketSphinxRecognizer, pocketsphinxAvailable } from '../../src/listening/pocketsphinx/index.js';
import type { RecognitionJob } from '../../src/listening/types.js';
import { frames, silence, speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';
import { wordErrorRate } from '../support/wordErrorRate.js';

/** Command-like phrases whose words are all in cmudict; the grammar holds all of them. */
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
const longSentence = 'what is the weather like today';

let renderer: SpeechRenderer;
const audio = new Map<string, Int16Array>();
let recognizer: PocketSphinxRecognizer;

beforeAll(async () => {
  renderer = await speechRenderer();
  for (const phrase of phrases) audio.set(phrase, await renderer.render(phrase));
  recognizer = new PocketSphinxRecognizer({ size: 1 });
  await recognizer.ready();
});

afterAll(async () => {
  await recognizer?.close();
  await renderer?.close();
});

const signal = () => new AbortController().signal;
const speech = (phrase: string) => audio.get(phrase)!;
/** Stream `pcm` through `job` in 20 ms frames, as a client's microphone sends it. */
function stream(job: RecognitionJob, pcm: Int16Array): void {
  for (const frame of frames(pcm, 20)) job.write(frame);
}
async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
/** Recognise the rendered `phrase` with a grammar of `withPhrases` (null: the general language model). */
async function recognise(r: PocketSphinxRecognizer, phrase: string, withPhrases: readonly string[] | null = phrases): Promise<string> {
  const job = r.start({ language: 'en', ...(withPhrases ? { phrases: withPhrases } : {}), signal: signal() });
  stream(job, speech(phrase));
  return job.finish();
}

describe('pocketsphinx recognizer', () => {
  it('says whether the library and model are installed', () => {
    expect(pocketsphinxAvailable()).toBe(true);
    expect(pocketsphinxAvailable({ hmm: '/nonexistent/model' })).toBe(false);
  });

  it('recognises every phrase exactly with a grammar of the expected phrases', async () => {
    for (const phrase of phrases) expect(await recognise(recognizer, phrase)).toBe(phrase);
  });

  it('maps the transcript back to the phrase exactly as the client wrote it', async () => {
    const written = phrases.map((p) => (p === 'what time is it' ? 'What time is it?' : p));
    expect(await recognise(recognizer, 'what time is it', written)).toBe('What time is it?');
  });

  it('sends partial hypotheses before the final', async () => {
    const events: string[] = [];
    const job = recognizer.start({ language: 'en', phrases, signal: signal(), onPartial: (text) => events.push(`partial:${text}`) });
    stream(job, speech(longSentence));
    const final = await job.finish();
    events.push(`final:${final}`);
    expect(final).toBe(longSentence);
    const partials = events.filter((e) => e.startsWith('partial:'));
    expect(partials.length).toBeGreaterThanOrEqual(1);
    expect(events.at(-1)).toBe(`final:${longSentence}`);
    // Each partial begins the way the sentence does.
    for (const p of partials) expect(p.slice('partial:'.length).split(' ')[0]).toBe('what');
  });

  it('cancel mid-turn, three times, leaves the same process clean for the next turn', async () => {
    const pids = recognizer.pids();
    const restarts = recognizer.stats().restarts;
    for (const phrase of ['turn on the kitchen lights', 'open the garage door', 'read my messages']) {
      const partials: string[] = [];
      const job = recognizer.start({ language: 'en', phrases, signal: signal(), onPartial: (p) => partials.push(p) });
      const pcm = speech(phrase);
      stream(job, pcm.subarray(0, Math.floor(pcm.length / 2)));
      job.cancel();
      job.cancel(); // idempotent
      const seen = partials.length;
      job.write(pcm.subarray(Math.floor(pcm.length / 2))); // ignored after cancel
      await expect(job.finish()).rejects.toMatchObject({ code: 'recognizer_failed' });
      expect(partials.length).toBe(seen); // no callback after cancel
    }
    // Half a sentence was in the decoder each time; the next turn hears only its own audio.
    expect(await recognise(recognizer, 'call my mother')).toBe('call my mother');
    expect(recognizer.pids()).toEqual(pids);
    expect(recognizer.stats().restarts).toBe(restarts);
  });

  it('an aborted signal cancels the job', async () => {
    const controller = new AbortController();
    const job = recognizer.start({ language: 'en', phrases, signal: controller.signal });
    stream(job, speech('stop the music').subarray(0, 8000));
    controller.abort();
    await expect(job.finish()).rejects.toMatchObject({ code: 'recognizer_failed' });
    expect(await recognise(recognizer, 'stop the music')).toBe('stop the music');
  });

  it('refuses a grammar with no dictionary word, and leaves out only the phrases with unknown words', async () => {
    const job = recognizer.start({ language: 'en', phrases: ['zzyzxq blorptang', '3rd'], signal: signal() });
    stream(job, speech('play some music'));
    await expect(job.finish()).rejects.toMatchObject({ code: 'recognizer_failed' });
    const debug: Array<Record<string, unknown>> = [];
    const logged = new PocketSphinxRecognizer({ log: { debug: (d) => debug.push(d), warn: () => {} } });
    try {
      expect(await recognise(logged, 'play some music', ['zzyzxq blorptang', ...phrases])).toBe('play some music');
      expect(debug.some((d) => d.event === 'pocketsphinx.phrases_dropped')).toBe(true);
    } finally {
      await logged.close();
    }
  });

  it('a job with no finish before its deadline fails with recognizer_timeout; the pool stays healthy', async () => {
    const r = new PocketSphinxRecognizer({ size: 1, jobDeadlineMs: 600 });
    try {
      await r.ready();
      const job = r.start({ language: 'en', phrases, signal: signal() });
      stream(job, speech('play some music').subarray(0, 8000));
      await new Promise((resolve) => setTimeout(resolve, 900));
      await expect(job.finish()).rejects.toMatchObject({ code: 'recognizer_timeout' });
      expect(await recognise(r, 'play some music')).toBe('play some music');
      expect(r.stats().restarts).toBe(0);
    } finally {
      await r.close();
    }
  });

  it('a process that gives no final in time (stopped) is replaced; the job fails with recognizer_timeout', async () => {
    const r = new PocketSphinxRecognizer({ size: 1, finishTimeoutMs: 2_000 });
    try {
      await r.ready();
      const [pid] = r.pids();
      const job = r.start({ language: 'en', phrases, signal: signal() });
      stream(job, speech('play some music'));
      process.kill(pid!, 'SIGSTOP');
      await expect(job.finish()).rejects.toMatchObject({ code: 'recognizer_timeout' });
      // The replacement needs its own start-up (0.5-2 s on 2 busy cores) before the next turn's clock starts.
      await waitFor(() => r.isReady(), 15_000);
      expect(await recognise(r, 'read my messages')).toBe('read my messages');
      expect(r.pids()).not.toContain(pid);
    } finally {
      await r.close();
    }
  });

  it('a process killed mid-turn fails that job with recognizer_failed, and the next job works', async () => {
    const r = new PocketSphinxRecognizer({ size: 1 });
    try {
      await r.ready();
      const [pid] = r.pids();
      const job = r.start({ language: 'en', phrases, signal: signal() });
      const pcm = speech('turn off the bedroom lights');
      stream(job, pcm.subarray(0, pcm.length / 2));
      process.kill(pid!, 'SIGKILL');
      await expect(job.finish()).rejects.toMatchObject({ code: 'recognizer_failed' });
      expect(await recognise(r, 'turn off the bedroom lights')).toBe('turn off the bedroom lights');
      expect(r.stats().restarts).toBe(1);
    } finally {
      await r.close();
    }
  });

  it('refuses with recognizer_busy beyond the wait queue, and serves the waiting job in turn', async () => {
    const r = new PocketSphinxRecognizer({ size: 1, maxWaiting: 1 });
    try {
      await r.ready();
      const running = r.start({ language: 'en', phrases, signal: signal() });
      stream(running, speech('call my mother'));
      const waiting = r.start({ language: 'en', phrases, signal: signal() });
      stream(waiting, speech('close the front door'));
      const refused = r.start({ language: 'en', phrases, signal: signal() });
      refused.write(silence(20));
      await expect(refused.finish()).rejects.toMatchObject({ code: 'recognizer_busy' });
      expect(r.stats()).toMatchObject({ busy: 1, waiting: 1, refusedBusy: 1 });
      const [first, second] = await Promise.all([running.finish(), waiting.finish()]);
      expect([first, second]).toEqual(['call my mother', 'close the front door']);
    } finally {
      await r.close();
    }
  });

  it('bounds the audio a waiting job may hold', async () => {
    const r = new PocketSphinxRecognizer({ size: 1, maxPendingAudioMs: 500 });
    try {
      await r.ready();
      const running = r.start({ language: 'en', phrases, signal: signal() });
      const waiting = r.start({ language: 'en', phrases, signal: signal() });
      stream(waiting, silence(1000));
      await expect(waiting.finish()).rejects.toMatchObject({ code: 'recognizer_failed' });
      expect(r.stats().waiting).toBe(0);
      running.cancel();
    } finally {
      await r.close();
    }
  });

  it('refuses other languages, and everything once closed (close is idempotent)', async () => {
    const r = new PocketSphinxRecognizer({ size: 1 });
    await r.ready();
    await expect(r.start({ language: 'ar', signal: signal() }).finish()).rejects.toMatchObject({ code: 'recognizer_unavailable' });
    const open = r.start({ language: 'en-US', phrases, signal: signal() });
    await Promise.all([r.close(), r.close()]);
    await expect(open.finish()).rejects.toMatchObject({ code: 'recognizer_unavailable' });
    await expect(r.start({ language: 'en', signal: signal() }).finish()).rejects.toMatchObject({ code: 'recognizer_unavailable' });
    expect(r.pids()).toEqual([]);
  });

  it('measures the word error rate of the general language model on the same sentences', async () => {
    const pairs: Array<{ reference: string; hypothesis: string }> = [];
    for (const phrase of phrases) pairs.push({ reference: phrase, hypothesis: await recognise(recognizer, phrase, null) });
    const wer = wordErrorRate(pairs);
    process.stdout.write(`pocketsphinx general model on the embedded voice: WER ${(wer * 100).toFixed(1)}% over ${phrases.length} sentences\n`);
    for (const { reference, hypothesis } of pairs) process.stdout.write(`  ${reference} → ${hypothesis}\n`);
    expect(Number.isFinite(wer)).toBe(true);
    expect(wer).toBeGreaterThanOrEqual(0);
    // Synthetic speech is far from the model's training data; this bound only catches a broken pipeline.
    expect(wer).toBeLessThan(1.5);
  }, 150_000); // the general model decodes near real time on this voice: about 2 s of CPU per sentence
});
