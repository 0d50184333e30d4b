// The ElevenLabs adapter where it used to part from the real service (issue 21), each
// against an emulator that behaves as the service does, behind the real voxline server,
// driven by a real WebSocket client: a close that overtakes its text, a context the
// service rejects on its own, and the inactivity timeout counted from our last message.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { concatInt16 } from '../../src/audio/pcm.js';
import { ElevenLabsEmulator, type ElevenLabsEmulatorOptions } from '../../src/emulators/elevenLabsEmulator.js';
import { emulatedSpeech } from '../../src/emulators/emulatedSpeech.js';
import { closeError } from '../../src/providers/elevenlabs/elevenLabsConnection.js';
import { elevenLabsProvider, type ElevenLabsProviderOptions } from '../../src/providers/elevenlabs/elevenLabsProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';
import { settle } from '../support/settle.js';

const key = 'xi_test_not_a_real_key';

interface Stack {
  emulator: ElevenLabsEmulator;
  provider: ReturnType<typeof elevenLabsProvider>;
  server: VoxlineServer;
  url: string;
}

const servers: VoxlineServer[] = [];
const emulators: ElevenLabsEmulator[] = [];
const clients: TestVoiceClient[] = [];

async function emulate(options: ElevenLabsEmulatorOptions = {}): Promise<ElevenLabsEmulator> {
  const emulator = new ElevenLabsEmulator({ apiKey: key, ...options });
  emulators.push(emulator);
  await emulator.listen();
  return emulator;
}

/** The emulator, our provider against it, and a voxline server speaking through it. */
async function start(provider: Partial<ElevenLabsProviderOptions> = {}, emulatorOptions: ElevenLabsEmulatorOptions = {}): Promise<Stack> {
  const emulator = await emulate(emulatorOptions);
  const eleven = elevenLabsProvider({ apiKey: key, baseURL: emulator.url, ...provider });
  const server = createVoxlineServer({ providers: [eleven], circuitBreaker: { failureThreshold: 1_000 } });
  servers.push(server);
  const listening = await server.listen(0, '127.0.0.1');
  return { emulator, provider: eleven, server, url: `${listening.url.replace('http', 'ws')}/v1/voice` };
}

async function client(stack: Stack): Promise<TestVoiceClient> {
  const c = await TestVoiceClient.start(stack.url);
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const server of servers.splice(0)) await server.close();
  for (const emulator of emulators.splice(0)) await emulator.close();
});

const sentence = 'Hello from a busy service, this sentence is long enough to be worth hearing.';

describe('a close that overtakes its text (the service under load)', () => {
  it('waits for the first audio before close_context, so the text is spoken: all of it, sample for sample', async () => {
    const s = await start({}, { closeOvertakesText: true, firstByteDelayMs: 150 });
    const c = await client(s);
    c.send({ type: 'speak', id: 'busy', text: sentence, voice: 'rachel' });
    const end = await c.waitForEnd('busy');
    expect(end.reason).toBe('completed');
    const contextId = [...s.emulator.sent.keys()].at(-1);
    expect(contextId).toBeDefined();
    const sent = concatInt16(s.emulator.sent.get(contextId!)!);
    const received = concatInt16(c.audioOf(end.stream));
    expect(sent.length).toBeGreaterThan(0);
    expect(received.length).toBe(sent.length);
    expect(Buffer.from(received.buffer, received.byteOffset, received.byteLength).equals(Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength))).toBe(true);
    assertContract(c.frames);
    await settle(() => s.emulator.stats().contexts === 0, 3_000, 'context released upstream');
  });

  it('an isFinal with no audio for speakable text ends the utterance failed/provider_unavailable, never completed', async () => {
    // The service stays silent past closeDeferMs, so the close goes before any audio and is honoured at once.
    const s = await start({ closeDeferMs: 200 }, { closeOvertakesText: true, firstByteDelayMs: 1_500 });
    const c = await client(s);
    c.send({ type: 'speak', id: 'dropped', text: sentence, voice: 'rachel' });
    const end = await c.waitForEnd('dropped');
    expect({ reason: end.reason, code: end.error?.code }).toEqual({ reason: 'failed', code: 'provider_unavailable' });
    expect(c.audioOf(end.stream).length).toBe(0);
    assertContract(c.frames);
    // The session and the connection go on.
    s.emulator.configure({ closeOvertakesText: false, firstByteDelayMs: 0 });
    c.send({ type: 'speak', id: 'after', text: 'And this one is heard.', voice: 'rachel' });
    expect((await c.waitForEnd('after')).reason).toBe('completed');
  });

  it('text with nothing to say (punctuation only) is closed at once and completes without audio', async () => {
    const s = await start({ closeDeferMs: 60_000 }, { closeOvertakesText: true, firstByteDelayMs: 150 });
    const c = await client(s);
    c.send({ type: 'speak', id: 'dots', text: '…', voice: 'rachel' });
    const end = await c.waitForEnd('dots');
    expect(end.reason).toBe('completed');
  });
});

describe('a context the service rejects on its own', () => {
  it('gives its slot back at once: errors cannot exhaust the connections, and the connection still goes idle and closes', async () => {
    // One connection of one context: a slot kept by an errored context would refuse every later utterance.
    const s = await start({ maxConnections: 1, maxContextsPerConnection: 1, inactivityTimeoutS: 11 });
    const c = await client(s);
    for (let i = 0; i < 3; i++) {
      s.emulator.failContextWhen(`Rejected number ${i}`);
      c.send({ type: 'speak', id: `bad${i}`, text: `Rejected number ${i}, the service will not speak this.`, voice: 'rachel' });
      const end = await c.waitForEnd(`bad${i}`);
      expect({ reason: end.reason, code: end.error?.code }).toEqual({ reason: 'failed', code: 'provider_unavailable' });
    }
    c.send({ type: 'speak', id: 'good', text: 'This one is spoken on the same connection.', voice: 'rachel' });
    const good = await c.waitForEnd('good');
    expect({ reason: good.reason, code: good.error?.code }).toEqual({ reason: 'completed', code: undefined });
    expect(s.emulator.stats().connections).toBe(1);
    expect(s.emulator.stats().policyCloses).toEqual({});
    assertContract(c.frames);
    // Nothing holds the connection: it is closed by us once idle (11 s timeout: 1 s after the last text).
    await settle(() => s.provider.connectionCount() === 0 && s.emulator.stats().connections === 0, 5_000, 'idle connection closed');
    expect(s.emulator.stats().policyCloses).toEqual({});
  });
});

describe('the idle close and the service inactivity timeout', () => {
  it('counts from the last text sent, not from isFinal: a slow utterance does not let the service time out first', async () => {
    // The service times out 6 s after our last message; we leave 3 s before that (3 s after the last
    // text). Its first audio comes 4.5 s after the text: counted from isFinal our close would come at
    // 7.5 s, after the service's 6 s; counted from the text it comes at isFinal, 1.5 s before.
    const s = await start({ inactivityTimeoutS: 6, idleMarginMs: 3_000 }, { firstByteDelayMs: 4_500 });
    const c = await client(s);
    c.send({ type: 'speak', id: 'slow', text: 'Hi there.', voice: 'rachel' });
    const end = await c.waitForEnd('slow', 15_000);
    expect(end.reason).toBe('completed');
    await settle(() => s.emulator.stats().connections === 0, 6_000, 'connection closed');
    expect(s.emulator.stats().policyCloses).toEqual({});
    expect(s.provider.connectionCount()).toBe(0);
  }, 20_000);
});

/** A raw client of the emulator, as the service's own protocol sees it. */
async function rawClient(emulator: ElevenLabsEmulator, inactivityS = 20) {
  const ws = new WebSocket(`${emulator.url}/v1/text-to-speech/voice/multi-stream-input?output_format=pcm_24000&inactivity_timeout=${inactivityS}`, {
    headers: { 'xi-api-key': key },
  });
  const messages: Record<string, unknown>[] = [];
  ws.on('message', (data) => messages.push(JSON.parse(data.toString()) as Record<string, unknown>));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, messages, closed, send: (m: unknown) => ws.send(JSON.stringify(m)) };
}

describe('the emulator speaks as the service does', () => {
  it('splits samples across messages, speaks flushed text after close_context, and sends isFinal only after it', async () => {
    const emulator = await emulate();
    const raw = await rawClient(emulator);
    raw.send({ text: ' ', context_id: 'a' });
    raw.send({ text: 'Spoken because it is flushed. ', context_id: 'a' });
    raw.send({ context_id: 'a', flush: true });
    await settle(() => raw.messages.some((m) => typeof m.audio === 'string'), 3_000, 'first audio');
    await new Promise((r) => setTimeout(r, 100));
    expect(raw.messages.some((m) => m.isFinal === true)).toBe(false); // a flush alone never ends a context
    raw.send({ text: 'Never flushed, so never spoken. ', context_id: 'a' });
    raw.send({ context_id: 'a', close_context: true });
    await settle(() => raw.messages.some((m) => m.isFinal === true), 3_000, 'isFinal');
    const audio = raw.messages.filter((m) => typeof m.audio === 'string').map((m) => Buffer.from(m.audio as string, 'base64'));
    expect(audio.some((b) => b.length % 2 === 1)).toBe(true);
    const bytes = Buffer.concat(audio);
    const sent = concatInt16(emulator.sent.get('a')!);
    expect(bytes.length).toBe(sent.byteLength);
    expect(bytes.equals(Buffer.from(sent.buffer, sent.byteOffset, sent.byteLength))).toBe(true);
    expect(sent.length).toBe(emulatedSpeech('Spoken because it is flushed.', 24_000).length); // nothing of the unflushed text
    expect(raw.messages.at(-1)).toEqual({ isFinal: true, contextId: 'a' });
    raw.ws.close();
  });

  it('closes 1008 with its sentence as the reason; the adapter reads max_active_conversations and input_timeout_exceeded from it alone', async () => {
    const emulator = await emulate();
    const busy = await rawClient(emulator);
    for (let i = 0; i < 6; i++) busy.send({ text: ' ', context_id: `c${i}` });
    const busyClose = await busy.closed;
    expect(busyClose.code).toBe(1008);
    expect(busyClose.reason).toMatch(/^Maximum simultaneous contexts per WebSocket connection exceeded \(5\)/);
    expect(busy.messages.at(-1)).toMatchObject({ error: 'max_active_conversations', code: 1008 });
    expect(closeError(busyClose.code, busyClose.reason, null).code).toBe('provider_busy');

    const idle = await rawClient(emulator, 1);
    idle.send({ text: ' ', context_id: 'x' });
    const idleClose = await idle.closed;
    expect(idleClose.code).toBe(1008);
    expect(Buffer.byteLength(idleClose.reason)).toBeLessThanOrEqual(123);
    expect(idleClose.reason).toMatch(/^Have not received a new text input within the timeout of 1 seconds/);
    expect(idle.messages.at(-1)).toMatchObject({ error: 'input_timeout_exceeded', code: 1008 });
    expect(closeError(idleClose.code, idleClose.reason, null).code).toBe('provider_timeout');
    expect(emulator.stats().policyCloses).toEqual({ max_active_conversations: 1, input_timeout_exceeded: 1 });
  });
});
