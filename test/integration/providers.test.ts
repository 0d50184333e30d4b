// Groq (through the real groq-sdk) and ElevenLabs (through our ws adapter) against their
// emulators on 127.0.0.1, behind the real voxline server, driven by a real WebSocket client.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { concatInt16 } from '../../src/audio/pcm.js';
import type { UtteranceEndedEvent } from '../../src/engine/voiceEngine.js';
import { ElevenLabsEmulator } from '../../src/emulators/elevenLabsEmulator.js';
import { upstreamFaults, type UpstreamFault } from '../../src/emulators/faults.js';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { elevenLabsProvider } from '../../src/providers/elevenlabs/elevenLabsProvider.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { firstBlockCollectedDuringWait } from '../support/blockRetention.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';
import { settle } from '../support/settle.js';

const groqKey = 'gsk_test_not_a_real_key';
const elevenKey = 'xi_test_not_a_real_key';
let groqEmu: GroqEmulator;
let elevenEmu: ElevenLabsEmulator;
let voxline: VoxlineServer;
let eleven: ReturnType<typeof elevenLabsProvider>;
let url: string;
let groqURL: string;
const ends: UtteranceEndedEvent[] = [];
const circuit: string[] = [];

beforeAll(async () => {
  groqEmu = new GroqEmulator({ apiKey: groqKey, retryAfterSeconds: 0.3 });
  elevenEmu = new ElevenLabsEmulator({ apiKey: elevenKey });
  groqURL = await groqEmu.listen();
  const elevenURL = await elevenEmu.listen();
  eleven = elevenLabsProvider({ apiKey: elevenKey, baseURL: elevenURL, inactivityTimeoutS: 11, closeGraceMs: 1_000 });
  voxline = createVoxlineServer({
    providers: [groqProvider({ apiKey: groqKey, baseURL: groqURL }), eleven],
    limits: { firstAudioTimeoutMs: 700, chunkGapTimeoutMs: 700, releaseTimeoutMs: 1_500 },
    // Fault tests fail on purpose; the breaker has its own test below.
    circuitBreaker: { failureThreshold: 1_000 },
  });
  voxline.engine.on('utteranceEnded', (e) => ends.push(e));
  voxline.engine.on('providerCircuit', (e) => circuit.push(`${e.provider}:${e.state}`));
  const listening = await voxline.listen(0, '127.0.0.1');
  url = `${listening.url.replace('http', 'ws')}/v1/voice`;
});

afterAll(async () => {
  await voxline?.close();
  await groqEmu?.close();
  await elevenEmu?.close();
});

afterEach(() => {
  groqEmu.faults.clear();
  elevenEmu.faults.clear();
  groqEmu.configure({ realtime: 0 });
  elevenEmu.configure({ realtime: 0 });
});

/** Nothing of an utterance is left: no engine job, no open upstream request or context. */
async function nothingLeft(): Promise<void> {
  await settle(() => voxline.engine.stats().upstreamJobs === 0 && groqEmu.stats().active === 0 && elevenEmu.stats().contexts === 0, 3_000);
}

const expected: Record<UpstreamFault, { reason: string; code?: string }> = {
  premature_close: { reason: 'failed', code: 'provider_unavailable' },
  no_final_marker: { reason: 'failed', code: 'provider_unavailable' },
  error_mid_stream: { reason: 'failed', code: 'provider_unavailable' },
  stall_before_first_byte: { reason: 'timeout', code: 'first_audio_timeout' },
  stall_mid_stream: { reason: 'timeout', code: 'upstream_stalled' },
  rate_limited: { reason: 'failed', code: 'rate_limited' },
  server_error: { reason: 'failed', code: 'provider_unavailable' },
  unauthorized: { reason: 'failed', code: 'provider_auth' },
  malformed: { reason: 'failed', code: 'provider_unavailable' },
  huge_frame: { reason: 'failed', code: 'provider_unavailable' },
  slow_trickle: { reason: 'completed' },
};

describe('groq through groq-sdk against the emulator', () => {
  it('speaks: the client receives exactly the samples the upstream sent, piece after piece, each ≤ 200 characters', async () => {
    const text = Array.from({ length: 6 }, (_, i) => `Sentence ${i + 1} is here, and it carries a few more words than needed to be long.`).join(' ');
    const before = groqEmu.requests.length;
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'g1', text, voice: 'groq:diana' });
    const end = await c.waitForEnd('g1');
    expect(end.reason).toBe('completed');
    const requests = groqEmu.requests.slice(before);
    expect(requests.length).toBeGreaterThan(2);
    for (const r of requests) {
      expect(r.input.length).toBeLessThanOrEqual(200);
      expect(r).toMatchObject({ voice: 'diana', model: 'canopylabs/orpheus-v1-english', outcome: 'completed' });
    }
    expect(requests.map((r) => r.input.trim()).join(' ')).toBe(text);
    const sent = concatInt16(requests.map((r) => r.samples));
    const received = concatInt16(c.audioOf(end.stream));
    expect(received.length).toBe(sent.length);
    expect(Buffer.from(received.buffer).equals(Buffer.from(sent.buffer))).toBe(true);
    assertContract(c.frames);
    c.close();
    await nothingLeft();
  });

  it('requests the next piece while the current one streams (one piece of look-ahead), and plays them in order', async () => {
    groqEmu.configure({ realtime: 1 });
    try {
      const before = groqEmu.requests.length;
      const c = await TestVoiceClient.start(url);
      c.send({ type: 'speak', id: 'ahead', text: 'The first sentence is long enough to go alone. And a second sentence that follows it.', voice: 'groq:hannah' });
      const end = await c.waitForEnd('ahead', 15_000);
      expect(end.reason).toBe('completed');
      const [first, second] = groqEmu.requests.slice(before);
      expect(first!.input).toBe('The first sentence is long enough to go alone.');
      expect(second!.startedAt).toBeLessThan(first!.releasedAt!);
      const sent = concatInt16([first!.samples, second!.samples]);
      expect(Buffer.from(concatInt16(c.audioOf(end.stream)).buffer).equals(Buffer.from(sent.buffer))).toBe(true);
      c.close();
    } finally {
      groqEmu.configure({ realtime: 0 });
    }
  });

  it('joins a first sentence too short to cover the next request\'s first byte with what follows', async () => {
    const before = groqEmu.requests.length;
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'short', text: 'Sure. Here is the weather for today. It will rain in the afternoon.', voice: 'groq:hannah' });
    expect((await c.waitForEnd('short', 15_000)).reason).toBe('completed');
    // One request while "Sure." is under 24 characters; then the rest is packed into the next.
    expect(groqEmu.requests.slice(before).map((r) => r.input)).toEqual(['Sure. Here is the weather for today.', 'It will rain in the afternoon.']);
    c.close();
  });

  it('starts the look-ahead with the current piece\'s first audio, not with its request', async () => {
    groqEmu.configure({ realtime: 1, firstByteDelayMs: 150 });
    try {
      const before = groqEmu.requests.length;
      const c = await TestVoiceClient.start(url);
      c.send({ type: 'speak', id: 'later', text: 'The first sentence here goes up alone. And a second sentence that follows it.', voice: 'groq:hannah' });
      expect((await c.waitForEnd('later', 15_000)).reason).toBe('completed');
      const [first, second] = groqEmu.requests.slice(before);
      // The second request waited for the first one's first byte (150 ms), yet started before it ended.
      expect(second!.startedAt - first!.startedAt).toBeGreaterThanOrEqual(150);
      expect(second!.startedAt).toBeLessThan(first!.releasedAt!);
      c.close();
    } finally {
      groqEmu.configure({ realtime: 0, firstByteDelayMs: 0 });
    }
  });

  it('picks the Arabic model for an Arabic voice, by bare voice name', async () => {
    const before = groqEmu.requests.length;
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'ar', text: 'مرحبا بكم في تطبيقنا.', voice: 'noura' });
    expect((await c.waitForEnd('ar')).reason).toBe('completed');
    expect(groqEmu.requests[before]).toMatchObject({ model: 'canopylabs/orpheus-arabic-saudi', voice: 'noura' });
    c.close();
  });

  it('lets go of each block it handed on while it waits for the next one', async () => {
    groqEmu.configure({ realtime: 1 }); // blocks arrive paced: the provider waits between them
    const stop = new AbortController();
    const provider = groqProvider({ apiKey: groqKey, baseURL: groqURL });
    const text = 'A sentence long enough to arrive in several blocks, at real time pacing.';
    try {
      expect(await firstBlockCollectedDuringWait(provider.synthesize({ text, voice: 'troy', signal: stop.signal })[Symbol.asyncIterator]())).toBe(true);
    } finally {
      stop.abort();
      await provider.close();
    }
  });

  it('STOP ends the utterance at once and aborts the HTTP request upstream', async () => {
    groqEmu.configure({ realtime: 1 });
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 's1', text: 'A long sentence that takes a few seconds to say at real time pacing, on purpose.', voice: 'troy' });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    const released = new Promise<number>((resolve) => groqEmu.once('released', (e) => resolve(e.at)));
    const stopAt = performance.now();
    c.send({ type: 'stop' });
    const end = await c.waitForEnd('s1');
    expect(end.reason).toBe('stopped');
    const releasedAt = await released;
    expect(releasedAt - stopAt).toBeLessThan(1_000);
    expect(groqEmu.requests.at(-1)!.outcome).toBe('aborted');
    assertContract(c.frames);
    await nothingLeft();
    // The session goes on.
    c.send({ type: 'speak', id: 's2', text: 'Next one.', voice: 'troy' });
    expect((await c.waitForEnd('s2', 15_000)).reason).toBe('completed');
    c.close();
  });

  for (const fault of upstreamFaults) {
    it(`fault ${fault}: ends once with ${expected[fault].reason}${expected[fault].code ? `/${expected[fault].code}` : ''}, then serves the next utterance`, async () => {
      const c = await TestVoiceClient.start(url);
      groqEmu.faults.push(fault);
      c.send({ type: 'speak', id: 'f', text: 'Hello from the fault injector, this is a test sentence.', voice: 'autumn' });
      const end = await c.waitForEnd('f');
      expect({ reason: end.reason, code: end.error?.code }).toEqual({ reason: expected[fault].reason, code: expected[fault].code });
      if (fault === 'slow_trickle') {
        const received = concatInt16(c.audioOf(end.stream));
        expect(received.length).toBe(groqEmu.requests.at(-1)!.samples.length);
      }
      if (fault === 'rate_limited') {
        expect(end.error?.retryAfterMs).toBe(300);
        await new Promise((r) => setTimeout(r, 350)); // honour it
      }
      await nothingLeft();
      c.send({ type: 'speak', id: 'next', text: 'And this one works.', voice: 'autumn' });
      expect((await c.waitForEnd('next')).reason).toBe('completed');
      assertContract(c.frames);
      c.close();
      await nothingLeft();
    });
  }

  it('a 429 closes the gate for its retry-after: the next call fails at once without reaching the upstream', async () => {
    const c = await TestVoiceClient.start(url);
    groqEmu.faults.push('rate_limited');
    c.send({ type: 'speak', id: 'r1', text: 'First.', voice: 'daniel' });
    expect((await c.waitForEnd('r1')).error?.code).toBe('rate_limited');
    const before = groqEmu.stats().requests;
    c.send({ type: 'speak', id: 'r2', text: 'Second.', voice: 'daniel' });
    const end = await c.waitForEnd('r2');
    expect(end.error?.code).toBe('rate_limited');
    expect(end.error?.retryAfterMs).toBeGreaterThan(0);
    expect(groqEmu.stats().requests).toBe(before);
    await new Promise((r) => setTimeout(r, 350));
    c.send({ type: 'speak', id: 'r3', text: 'Third.', voice: 'daniel' });
    expect((await c.waitForEnd('r3')).reason).toBe('completed');
    c.close();
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive upstream failures, fails fast while open, and closes after a good trial', async () => {
    const emu = new GroqEmulator({ apiKey: groqKey });
    const server = createVoxlineServer({
      providers: [groqProvider({ apiKey: groqKey, baseURL: await emu.listen() })],
      circuitBreaker: { failureThreshold: 3, halfOpenAfterMs: 400 },
    });
    const states: string[] = [];
    server.engine.on('providerCircuit', (e) => states.push(e.state));
    const { url: http } = await server.listen(0, '127.0.0.1');
    try {
      const c = await TestVoiceClient.start(`${http.replace('http', 'ws')}/v1/voice`);
      emu.faults.always('server_error');
      for (let i = 0; i < 3; i++) {
        c.send({ type: 'speak', id: `x${i}`, text: 'Failing.' });
        expect((await c.waitForEnd(`x${i}`)).error?.code).toBe('provider_unavailable');
      }
      expect(server.engine.guards.get('groq')!.state).toBe('open');
      const requests = emu.stats().requests;
      c.send({ type: 'speak', id: 'fast', text: 'Refused at once.' });
      const fast = await c.waitForEnd('fast');
      expect(fast.error).toMatchObject({ code: 'provider_unavailable', message: expect.stringMatching(/circuit breaker is open/) });
      expect(emu.stats().requests).toBe(requests);
      emu.faults.clear();
      await new Promise((r) => setTimeout(r, 450));
      c.send({ type: 'speak', id: 'trial', text: 'The trial call.' });
      expect((await c.waitForEnd('trial')).reason).toBe('completed');
      expect(states).toEqual(['open', 'half-open', 'closed']);
      c.close();
    } finally {
      await server.close();
      await emu.close();
    }
  });
});

describe('elevenlabs multi-context websocket against the emulator', () => {
  it('speaks in one context: space init, text with trailing spaces, flush, close_context, isFinal; exact samples', async () => {
    const texts: string[] = [];
    const onText = (e: { text: string }) => texts.push(e.text);
    elevenEmu.on('text', onText);
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'e1', text: 'Hello from ElevenLabs. A second sentence follows.', voice: 'elevenlabs:rachel' });
    const end = await c.waitForEnd('e1');
    elevenEmu.off('text', onText);
    expect(end.reason).toBe('completed');
    expect(texts.length).toBeGreaterThan(0);
    for (const t of texts) expect(t.endsWith(' ')).toBe(true);
    const contextId = [...elevenEmu.sent.keys()].at(-1)!;
    const sent = concatInt16(elevenEmu.sent.get(contextId)!);
    const received = concatInt16(c.audioOf(end.stream));
    expect(received.length).toBe(sent.length);
    expect(Buffer.from(received.buffer).equals(Buffer.from(sent.buffer))).toBe(true);
    expect(elevenEmu.stats().policyCloses).toEqual({});
    assertContract(c.frames);
    c.close();
    await nothingLeft();
  });

  it('streams incremental text into the same context as it arrives', async () => {
    const opened = elevenEmu.stats().contextsOpened;
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'inc', text: 'First part of the answer.', voice: 'sarah', final: false });
    // The splitter releases a sentence once whitespace or the next one follows its full stop.
    c.send({ type: 'speak', id: 'inc', text: ' Second part, a moment later. Third', final: false });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    await new Promise((r) => setTimeout(r, 100));
    c.send({ type: 'speak', id: 'inc', text: ' And the end.', final: true });
    const end = await c.waitForEnd('inc');
    expect(end.reason).toBe('completed');
    expect(elevenEmu.stats().contextsOpened - opened).toBe(1);
    const contextId = [...elevenEmu.sent.keys()].at(-1)!;
    expect(concatInt16(c.audioOf(end.stream)).length).toBe(concatInt16(elevenEmu.sent.get(contextId)!).length);
    assertContract(c.frames);
    c.close();
    await nothingLeft();
  });

  it('lets go of each block it handed on while it waits for the next one', async () => {
    elevenEmu.configure({ realtime: 1 });
    const stop = new AbortController();
    const text = 'A sentence long enough to arrive in several blocks, at real time pacing.';
    try {
      expect(await firstBlockCollectedDuringWait(eleven.synthesize({ text, voice: 'rachel', signal: stop.signal })[Symbol.asyncIterator]())).toBe(true);
    } finally {
      stop.abort();
    }
  });

  it('STOP is local and immediate; close_context follows, late audio is dropped, the context is released upstream', async () => {
    elevenEmu.configure({ realtime: 1 });
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'es', text: 'This will be stopped while it is still speaking, long before the end of it.', voice: 'george' });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    const closed = new Promise<number>((resolve) => elevenEmu.once('contextClosed', (e) => resolve(e.at)));
    c.send({ type: 'stop' });
    const end = await c.waitForEnd('es');
    expect(end.reason).toBe('stopped');
    await closed; // the service confirmed the close (isFinal) after its queued audio, which we dropped
    assertContract(c.frames);
    await nothingLeft();
    c.send({ type: 'speak', id: 'after', text: 'Next.', voice: 'george' });
    expect((await c.waitForEnd('after', 15_000)).reason).toBe('completed');
    c.close();
  });

  it('never opens a 5th context on one connection: many concurrent utterances spread over connections', async () => {
    elevenEmu.configure({ realtime: 0.5 });
    const clients = await Promise.all(Array.from({ length: 9 }, () => TestVoiceClient.start(url)));
    clients.forEach((c, i) => c.send({ type: 'speak', id: `p${i}`, text: `Parallel utterance number ${i}, a little long.`, voice: 'adam' }));
    await settle(() => elevenEmu.stats().contexts >= 9, 5_000);
    expect(elevenEmu.stats().connections).toBeGreaterThanOrEqual(3);
    const results = await Promise.all(clients.map((c, i) => c.waitForEnd(`p${i}`, 20_000)));
    for (const r of results) expect(r.reason).toBe('completed');
    expect(elevenEmu.stats().policyCloses).toEqual({});
    clients.forEach((c) => c.close());
    await nothingLeft();
  });

  for (const fault of upstreamFaults) {
    it(`fault ${fault}: ends once with ${expected[fault].reason}${expected[fault].code ? `/${expected[fault].code}` : ''}, then serves the next utterance`, async () => {
      const c = await TestVoiceClient.start(url);
      elevenEmu.faults.push(fault);
      c.send({ type: 'speak', id: 'f', text: 'Hello from the fault injector, this is a test sentence.', voice: 'rachel' });
      const end = await c.waitForEnd('f');
      expect({ reason: end.reason, code: end.error?.code }).toEqual({ reason: expected[fault].reason, code: expected[fault].code });
      await nothingLeft();
      c.send({ type: 'speak', id: 'next', text: 'And this one works.', voice: 'rachel' });
      expect((await c.waitForEnd('next')).reason).toBe('completed');
      assertContract(c.frames);
      c.close();
      await nothingLeft();
    });
  }

  it('closes an idle upstream connection itself, before the service would', async () => {
    // Closed from our side: the pool is empty and the service saw the socket close.
    await settle(() => eleven.connectionCount() === 0 && elevenEmu.stats().connections === 0, 3_000);
    expect(elevenEmu.stats().policyCloses.input_timeout_exceeded).toBeUndefined();
  });
});

describe('every utterance of this file ended exactly once', () => {
  it('engine end records are unique per session and stream', () => {
    const keys = ends.map((e) => `${e.sessionId}/${e.stream}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(circuit).toEqual([]); // the shared server's breaker never opened
  });
});
