// Limits, auth, liveness and shutdown of the real server on 127.0.0.1.
import { generate } from 'selfsigned';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { FaultProxy } from '../../src/emulators/faultProxy.js';
import { useGroqServers } from '../support/groqServers.js';
import { settle } from '../support/settle.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

const { start, emulator, track } = useGroqServers();

/** The HTTP status of a refused upgrade, or 101 when it opened. */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
    ws.once('error', () => {});
  });
}

describe('connection caps, Origin and keys', () => {
  it('caps concurrent connections per IP with 429, and frees the slot on close', async () => {
    const { ws, server } = await start({ maxConnectionsPerIp: 2 });
    const a = await upgradeStatus(ws);
    const b = await upgradeStatus(ws);
    expect([a.status, b.status]).toEqual([101, 101]);
    expect((await upgradeStatus(ws)).status).toBe(429);
    a.ws!.close();
    await settle(() => server.engine.stats().sessions === 1);
    const again = await upgradeStatus(ws);
    expect(again.status).toBe(101);
    b.ws!.close();
    again.ws!.close();
    expect(server.engine.stats().refusedConnections).toEqual({ ip_cap: 1 });
  });

  it('refuses an Origin outside the allowlist with 403; clients without Origin are unaffected', async () => {
    const { ws } = await start({ allowedOrigins: ['https://app.example'] });
    expect((await upgradeStatus(ws, { origin: 'https://evil.example' })).status).toBe(403);
    const allowed = await upgradeStatus(ws, { origin: 'https://app.example' });
    const server = await upgradeStatus(ws);
    expect([allowed.status, server.status]).toEqual([101, 101]);
    allowed.ws!.close();
    server.ws!.close();
  });

  it('counts failed auth, never echoes the key, and caps sessions per key', async () => {
    const { ws, server } = await start({ apiKeys: ['key-one'], abuse: { maxSessionsPerKey: 2 } });
    const wrong = await TestVoiceClient.connect(ws);
    wrong.send({ type: 'session.start', token: 'not-the-key-123' });
    expect(await wrong.waitForClose()).toBe(1008);
    expect(JSON.stringify(wrong.messages())).not.toContain('not-the-key-123');
    expect(server.engine.stats().authFailures).toBe(1);
    const one = await TestVoiceClient.start(ws, { token: 'key-one' });
    const two = await TestVoiceClient.start(ws, { token: 'key-one' });
    const three = await TestVoiceClient.connect(ws);
    three.send({ type: 'session.start', token: 'key-one' });
    expect(await three.waitForMessage((m) => m.type === 'error')).toMatchObject({ code: 'too_many_sessions' });
    expect(await three.waitForClose()).toBe(1008);
    one.close();
    await settle(() => server.engine.stats().sessions === 1);
    const four = await TestVoiceClient.start(ws, { token: 'key-one' });
    two.close();
    four.close();
  });
});

describe('floods and budgets', () => {
  it('a flooding client is refused frame by frame, then cut off alone; its neighbour keeps speaking', async () => {
    const { ws, server } = await start({ abuse: { messagesPerSecond: 20, messageBurst: 20, maxRejectedInARow: 30 } });
    const neighbour = await TestVoiceClient.start(ws);
    const flooder = await TestVoiceClient.start(ws);
    for (let i = 0; i < 200 && flooder.ws.readyState === WebSocket.OPEN; i++) flooder.send({ type: 'ping' });
    expect(await flooder.waitForClose()).toBe(1008);
    const limited = flooder.messages().filter((m) => m.type === 'error' && m.code === 'rate_limited');
    expect(limited.length).toBeGreaterThanOrEqual(30);
    expect(server.engine.stats().floodCutoffs).toBe(1);
    neighbour.send({ type: 'speak', id: 'n', text: 'The neighbour is not affected.' });
    expect((await neighbour.waitForEnd('n')).reason).toBe('completed');
    expect(neighbour.messages().filter((m) => m.type === 'error')).toEqual([]);
    neighbour.close();
  });

  it('limits text per minute per connection with rate_limited and the utterance id', async () => {
    const { ws } = await start({ abuse: { textCharsPerMinute: 100 } });
    const c = await TestVoiceClient.start(ws);
    c.send({ type: 'speak', id: 'a', text: 'x'.repeat(80) + '.', mode: 'enqueue' });
    c.send({ type: 'speak', id: 'b', text: 'y'.repeat(40) + '.', mode: 'enqueue' });
    expect(await c.waitForMessage((m) => m.type === 'error')).toMatchObject({ code: 'rate_limited', id: 'b' });
    expect((await c.waitForEnd('a')).reason).toBe('completed');
    c.close();
  });
});

describe('liveness and shutdown', () => {
  it('a half-open peer (the network stops forwarding, sockets stay open) is closed by the ping deadline and released', async () => {
    const { server, http } = await start({ heartbeatIntervalMs: 150 });
    const port = Number(new URL(http).port);
    const proxy = new FaultProxy({ host: '127.0.0.1', port });
    await proxy.listen();
    try {
      const ends: string[] = [];
      server.engine.on('utteranceEnded', (e) => ends.push(`${e.reason}/${e.cause}`));
      emulator().configure({ realtime: 1 });
      const c = await TestVoiceClient.start(`ws://127.0.0.1:${proxy.port}/v1/voice`);
      c.send({ type: 'speak', id: 'h', text: 'This long utterance is cut off by a network that silently stops forwarding.' });
      await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
      proxy.set({ blackhole: true });
      await settle(() => server.engine.stats().sessions === 0 && server.engine.stats().upstreamJobs === 0, 3_000, 'session released');
      expect(ends).toEqual(['stopped/client_gone']);
      expect(c.ws.readyState).toBe(WebSocket.OPEN); // the client's side never heard a thing
      c.ws.terminate();
    } finally {
      emulator().configure({ realtime: 0 });
      await proxy.close();
    }
  });

  it('shutdown ends every live utterance once (failed, shutting_down), closes with 1001 and refuses new sessions', async () => {
    const { server, ws } = await start();
    emulator().configure({ realtime: 1 });
    try {
      const c = await TestVoiceClient.start(ws);
      c.send({ type: 'speak', id: 'live', text: 'Still speaking when the server is told to stop, and that is fine.' });
      await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
      const stopping = server.close();
      const end = await c.waitForEnd('live');
      expect(end).toMatchObject({ reason: 'failed', error: { code: 'shutting_down' } });
      expect(await c.waitForClose()).toBe(1001);
      assertContract(c.frames);
      await stopping;
      expect(server.engine.stats()).toMatchObject({ sessions: 0, upstreamJobs: 0 });
    } finally {
      emulator().configure({ realtime: 0 });
    }
  });

  it('serves wss:// when given a certificate and key', async () => {
    const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
      keySize: 2048,
      notAfterDate: new Date(Date.now() + 86_400_000),
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
    });
    const { ws, http } = await start({ tls: { cert: pems.cert, key: pems.private } });
    expect(http).toMatch(/^https:\/\//);
    expect(ws).toMatch(/^wss:\/\//);
    const c = await TestVoiceClient.connect(ws, { ca: pems.cert });
    c.send({ type: 'session.start' });
    await c.waitForMessage((m) => m.type === 'session.ready');
    c.send({ type: 'speak', id: 't', text: 'Over TLS.' });
    expect((await c.waitForEnd('t')).reason).toBe('completed');
    c.close();
  });
});
