// Network faults through the TCP fault proxy, between client and engine and between engine
// and upstream: latency with jitter, a bandwidth cap, stop-forwarding, reset. Every
// utterance ends once, nothing leaks, and the engine keeps serving.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { concatInt16 } from '../../src/audio/pcm.js';
import { FaultProxy } from '../../src/emulators/faultProxy.js';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { settle } from '../support/settle.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

let emu: GroqEmulator;
let upstreamProxy: FaultProxy;
let clientProxy: FaultProxy;
let voxline: VoxlineServer;
let direct: string;
let proxied: string;
const ends: string[] = [];

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'upstream' });
  const emuPort = Number(new URL(await emu.listen()).port);
  upstreamProxy = new FaultProxy({ host: '127.0.0.1', port: emuPort });
  await upstreamProxy.listen();
  voxline = createVoxlineServer({
    providers: [groqProvider({ apiKey: 'upstream', baseURL: `http://127.0.0.1:${upstreamProxy.port}` })],
    limits: { firstAudioTimeoutMs: 800, chunkGapTimeoutMs: 800 },
    // Small watermarks so a slow client link pauses the upstream within a short utterance.
    highWaterBytes: 16 * 1024,
    lowWaterBytes: 4 * 1024,
    // Long enough for a ping queued behind a slow link's backlog.
    heartbeatIntervalMs: 3_000,
  });
  voxline.engine.on('utteranceEnded', (e) => ends.push(`${e.id}:${e.reason}`));
  const { url } = await voxline.listen(0, '127.0.0.1');
  direct = `${url.replace('http', 'ws')}/v1/voice`;
  clientProxy = new FaultProxy({ host: '127.0.0.1', port: Number(new URL(url).port) });
  await clientProxy.listen();
  proxied = `ws://127.0.0.1:${clientProxy.port}/v1/voice`;
});

afterEach(async () => {
  clientProxy.set({ latencyMs: 0, jitterMs: 0, bytesPerSecond: 0, blackhole: false });
  upstreamProxy.set({ latencyMs: 0, jitterMs: 0, bytesPerSecond: 0, blackhole: false });
  emu.configure({ realtime: 0 });
  // Nothing leaks, and a fresh session straight to the engine is served.
  await settle(() => voxline.engine.stats().sessions === 0 && voxline.engine.stats().upstreamJobs === 0 && emu.stats().active === 0, 8_000, 'release');
  const c = await TestVoiceClient.start(direct);
  c.send({ type: 'speak', id: 'after', text: 'Still serving.' });
  expect((await c.waitForEnd('after')).reason).toBe('completed');
  c.close();
  await settle(() => voxline.engine.stats().sessions === 0);
});

afterAll(async () => {
  await voxline?.close();
  await clientProxy?.close();
  await upstreamProxy?.close();
  await emu?.close();
});

const text = 'A sentence of ordinary length, spoken across a network that misbehaves.';

describe('between client and engine', () => {
  it('latency with jitter: the utterance completes, every sample in order', async () => {
    clientProxy.set({ latencyMs: 40, jitterMs: 30 });
    const before = emu.requests.length;
    const c = await TestVoiceClient.start(proxied);
    c.send({ type: 'speak', id: 'lat', text });
    const end = await c.waitForEnd('lat');
    expect(end.reason).toBe('completed');
    const sent = concatInt16(emu.requests.slice(before).map((r) => r.samples));
    expect(Buffer.from(concatInt16(c.audioOf(end.stream)).buffer).equals(Buffer.from(sent.buffer))).toBe(true);
    assertContract(c.frames);
    c.close();
  });

  it('a bandwidth cap below real time: the utterance completes, slower, every sample in order', async () => {
    clientProxy.set({ bytesPerSecond: 40_000 });
    const before = emu.requests.length;
    const c = await TestVoiceClient.start(proxied);
    c.send({ type: 'speak', id: 'bw', text });
    const end = await c.waitForEnd('bw', 20_000);
    expect(end.reason).toBe('completed');
    const sent = concatInt16(emu.requests.slice(before).map((r) => r.samples));
    expect(Buffer.from(concatInt16(c.audioOf(end.stream)).buffer).equals(Buffer.from(sent.buffer))).toBe(true);
    assertContract(c.frames);
    c.close();
  });

  it('stop-forwarding: the ping deadline releases the session once', async () => {
    emu.configure({ realtime: 1 });
    const c = await TestVoiceClient.start(proxied);
    c.send({ type: 'speak', id: 'bh', text });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    clientProxy.set({ blackhole: true });
    // Two ping intervals at most.
    await settle(() => voxline.engine.stats().sessions === 0, 8_000, 'heartbeat cut-off');
    // Exactly one end: `completed` if the server had sent everything into the void before the
    // ping deadline, `stopped` (client gone) if not.
    const mine = ends.filter((e) => e.startsWith('bh:'));
    expect(mine).toHaveLength(1);
    expect(['bh:completed', 'bh:stopped']).toContain(mine[0]);
    c.ws.terminate();
  });

  it('reset: the session ends once and releases its upstream', async () => {
    emu.configure({ realtime: 1 });
    const c = await TestVoiceClient.start(proxied);
    c.send({ type: 'speak', id: 'rst', text });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    clientProxy.resetAll();
    await settle(() => voxline.engine.stats().sessions === 0, 5_000);
    expect(ends.filter((e) => e.startsWith('rst:'))).toEqual(['rst:stopped']);
  });
});

describe('between engine and upstream', () => {
  const speak = async (id: string) => {
    const c = await TestVoiceClient.start(direct);
    c.send({ type: 'speak', id, text });
    return { c, end: await c.waitForEnd(id, 20_000) };
  };

  it('latency with jitter: completes with exactly the upstream samples', async () => {
    upstreamProxy.set({ latencyMs: 30, jitterMs: 20 });
    const before = emu.requests.length;
    const { c, end } = await speak('ulat');
    expect(end.reason).toBe('completed');
    const sent = concatInt16(emu.requests.slice(before).map((r) => r.samples));
    expect(concatInt16(c.audioOf(end.stream)).length).toBe(sent.length);
    c.close();
  });

  it('a bandwidth cap: slower than real time, still completes', async () => {
    upstreamProxy.set({ bytesPerSecond: 30_000 });
    const { c, end } = await speak('ubw');
    expect(end.reason, JSON.stringify(end)).toBe('completed');
    assertContract(c.frames);
    c.close();
  });

  it('stop-forwarding mid-stream: timeout / upstream_stalled, the request is aborted', async () => {
    emu.configure({ realtime: 1 });
    const c = await TestVoiceClient.start(direct);
    c.send({ type: 'speak', id: 'ubh', text });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    upstreamProxy.set({ blackhole: true });
    const end = await c.waitForEnd('ubh');
    expect(end).toMatchObject({ reason: 'timeout', error: { code: 'upstream_stalled' } });
    assertContract(c.frames);
    c.close();
  });

  it('reset mid-stream: failed / provider_unavailable', async () => {
    emu.configure({ realtime: 1 });
    const c = await TestVoiceClient.start(direct);
    c.send({ type: 'speak', id: 'urst', text });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    upstreamProxy.resetAll();
    const end = await c.waitForEnd('urst');
    expect(end).toMatchObject({ reason: 'failed', error: { code: 'provider_unavailable' } });
    assertContract(c.frames);
    c.close();
  });
});

describe('the fault proxy itself', () => {
  it('a blackhole carries no close either: the other side hears it only once the network is back', async () => {
    const { createServer, createConnection } = await import('node:net');
    const accepted: import('node:net').Socket[] = [];
    const target = createServer((s) => accepted.push(s));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const proxy = new FaultProxy({ host: '127.0.0.1', port: (target.address() as import('node:net').AddressInfo).port });
    await proxy.listen();
    try {
      const client = createConnection({ host: '127.0.0.1', port: proxy.port });
      let clientClosed = false;
      client.on('close', () => (clientClosed = true));
      await settle(() => accepted.length === 1, 2_000, 'proxied connection');
      proxy.set({ blackhole: true });
      accepted[0]!.destroy();
      await new Promise((r) => setTimeout(r, 200));
      expect(clientClosed).toBe(false);
      expect(proxy.connections).toBe(1);
      proxy.set({ blackhole: false });
      await settle(() => clientClosed, 2_000, 'close delivered after the blackhole');
      expect(proxy.connections).toBe(0);
    } finally {
      await proxy.close();
      await new Promise<void>((r) => target.close(() => r()));
    }
  });
});
