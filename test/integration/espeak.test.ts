// The embedded voice as a client meets it: a real server on 127.0.0.1, real WebSockets, real
// eSpeak NG workers. One worker, so a hostile job and the next job share the same eSpeak.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import type { ServerMessage, VoiceInfo } from '../../machines/types.js';
import { firstBlockCollectedDuringWait } from '../support/blockRetention.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

const sampleRate = 24_000;
// eSpeak's noise source makes the same text a few samples longer or shorter from run to run
// (about ±20 at 22 050 Hz); a voice or language carried over from another job changes it by
// hundreds to thousands.
const sameLengthTolerance = 100;
// The worker's bound on audio per job: 2 s plus 0.5 s per character (espeakWorker.mjs).
const boundSeconds = (text: string) => 2 + 0.5 * text.length;

let voxline: VoxlineServer;
let url: string;

beforeAll(async () => {
  voxline = createVoxlineServer({
    providers: [new EspeakProvider({ size: 1 })],
    limits: { firstAudioTimeoutMs: 10_000 },
  });
  const listening = await voxline.listen(0, '127.0.0.1');
  url = `${listening.url.replace('http', 'ws')}/v1/voice`;
  await voxline.engine.ready();
});

afterAll(async () => {
  await voxline?.close();
});

let nextId = 0;
/** Speak `text` and wait for its end: the end message and how many samples the client got. */
async function speak(client: TestVoiceClient, text: string, voice?: string, timeoutMs = 30_000) {
  const id = `u${nextId++}`;
  client.send({ type: 'speak', id, text, ...(voice ? { voice } : {}) });
  const end = await client.waitForEnd(id, timeoutMs);
  const samples = client.audioOf(end.stream).reduce((n, pcm) => n + pcm.length, 0);
  return { end, samples };
}

describe('client text is spoken literally by the embedded voice', () => {
  it('speaks the words between < and > ("If a<b and b>c, stop." keeps "b and b")', async () => {
    const c = await TestVoiceClient.start(url);
    const withBrackets = await speak(c, 'If a<b and b>c, stop.');
    const bracketedPartRemoved = await speak(c, 'If a c, stop.');
    const wordsSpelledOut = await speak(c, 'If a b and b c, stop.');
    expect(withBrackets.end.reason).toBe('completed');
    // Read as markup, "<b and b>" was a tag and vanished: the audio was no longer than without it.
    expect(withBrackets.samples).toBeGreaterThan(bracketedPartRemoved.samples * 1.3);
    expect(withBrackets.samples).toBeGreaterThan(wordsSpelledOut.samples * 0.85);
    assertContract(c.frames);
    c.close();
  });

  it('reads an SSML break tag as text: seconds of audio, not minutes', async () => {
    const c = await TestVoiceClient.start(url);
    const text = '<break time="100000s"/>';
    const { end, samples } = await speak(c, text);
    expect(end.reason).toBe('completed');
    expect(samples).toBeGreaterThan(0);
    expect(samples / sampleRate).toBeLessThan(boundSeconds(text));
    assertContract(c.frames);
    c.close();
  });

  it('reads [[…]] as text, not as eSpeak phoneme codes', async () => {
    const c = await TestVoiceClient.start(url);
    // As phoneme input, "[[h@l'oU]]" is the word "hello" (about 0.45 s); as text it is letters and symbols.
    const bracketed = await speak(c, "[[h@l'oU]]");
    const hello = await speak(c, 'hello');
    expect(bracketed.end.reason).toBe('completed');
    expect(bracketed.samples).toBeGreaterThan(hello.samples * 1.5);
    c.close();
  });

  it('reads an entity as its characters: "&amp;" is not decoded to "&"', async () => {
    const c = await TestVoiceClient.start(url);
    const entity = await speak(c, 'Tom &amp; Jerry');
    const ampersand = await speak(c, 'Tom & Jerry');
    expect(entity.end.reason).toBe('completed');
    expect(entity.samples).toBeGreaterThan(ampersand.samples * 1.3);
    c.close();
  });

  it('a job after a hostile one sounds as it would on a fresh worker', async () => {
    const c = await TestVoiceClient.start(url);
    const probe = 'The quick brown fox jumps over the lazy dog.';
    const fresh = await speak(c, probe);
    const hostile = [
      '<s xml:lang="fr">bonjour',
      '<voice gender="female">hi',
      '<voice name="ar">',
      '<prosody rate="x-slow" pitch="x-high">hello',
      '<say-as interpret-as="characters">',
      'Привет мир',
    ];
    for (const text of hostile) {
      await speak(c, text);
      const after = await speak(c, probe);
      expect(after.end.reason).toBe('completed');
      expect(Math.abs(after.samples - fresh.samples), `after ${JSON.stringify(text)}`).toBeLessThanOrEqual(sameLengthTolerance);
    }
    assertContract(c.frames);
    c.close();
  });
});

describe('audio per character is bounded', () => {
  it('a text that reads out as minutes of symbol names ends failed / provider_rejected at the bound; the worker goes on', async () => {
    const c = await TestVoiceClient.start(url);
    // Each Braille pattern is read by its whole name ("braille pattern dots one two …"): ~2 s a character.
    const text = '⣿⣷⣟⣽⡿'.repeat(2);
    const { end, samples } = await speak(c, text);
    expect(end.reason).toBe('failed');
    expect(end.error?.code).toBe('provider_rejected');
    // The audio up to the bound was delivered, and nothing past it (a frame of slack for resampling).
    expect(samples).toBeGreaterThan(0);
    expect(samples).toBeLessThanOrEqual(boundSeconds(text) * sampleRate + 960);
    // A refused text is the text's fault: the voice keeps serving, its circuit breaker stays closed.
    for (let i = 0; i < 6; i++) expect((await speak(c, text)).end.error?.code).toBe('provider_rejected');
    const next = await speak(c, 'Still here.');
    expect(next.end.reason).toBe('completed');
    expect(next.samples).toBeGreaterThan(0);
    assertContract(c.frames);
    c.close();
  });
});

describe('memory', () => {
  it('the provider lets go of each block it handed on while it waits for the next one', async () => {
    const provider = new EspeakProvider({ size: 1 });
    await provider.ready();
    const stop = new AbortController();
    const text = 'A sentence long enough to come out of the worker in several blocks, one after another.';
    try {
      const blocks = provider.synthesize({ text, voice: provider.voices[0]!.id, signal: stop.signal })[Symbol.asyncIterator]();
      expect(await firstBlockCollectedDuringWait(blocks)).toBe(true);
    } finally {
      stop.abort();
      await provider.close();
    }
  });
});

describe('every advertised voice speaks', () => {
  it('speaks a sentence with each voice in session.ready', async () => {
    const c = await TestVoiceClient.start(url);
    const ready = c.messages()[0] as Extract<ServerMessage, { type: 'session.ready' }>;
    const voices: VoiceInfo[] = ready.voices;
    expect(voices.map((v) => v.id)).toEqual(expect.arrayContaining(['en-us', 'en-gb', 'ar']));
    for (const voice of voices) {
      const text = voice.language === 'ar' ? 'مرحبا بكم في تطبيقنا.' : 'Good morning, this is a test of the voice.';
      const { end, samples } = await speak(c, text, voice.id);
      expect({ voice: voice.id, reason: end.reason, error: end.error }).toEqual({ voice: voice.id, reason: 'completed', error: undefined });
      expect(samples, voice.id).toBeGreaterThan(sampleRate / 2);
    }
    assertContract(c.frames);
    c.close();
  });
});
