// The real server on 127.0.0.1 with the real eSpeak NG workers, over real WebSockets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import type { UtteranceEndedEvent } from '../../src/engine/voiceEngine.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';
import { settle } from '../support/settle.js';

const longText = Array.from({ length: 30 }, (_, i) => `This is sentence number ${i + 1} of a long answer.`).join(' ');

let voxline: VoxlineServer;
let provider: EspeakProvider;
let url: string;
let httpUrl: string;
const ends: UtteranceEndedEvent[] = [];


beforeAll(async () => {
  provider = new EspeakProvider({ size: 2, jobStallMs: 600 });
  voxline = createVoxlineServer({
    providers: [provider],
    maxFrameBytes: 64 * 1024,
    limits: { handshakeTimeoutMs: 400, maxTextChars: 4_000, firstAudioTimeoutMs: 4_000, releaseTimeoutMs: 1_000 },
  });
  voxline.engine.on('utteranceEnded', (e) => ends.push(e));
  const listening = await voxline.listen(0, '127.0.0.1');
  httpUrl = listening.url;
  url = `${listening.url.replace('http', 'ws')}/v1/voice`;
  await voxline.engine.ready();
});

afterAll(async () => {
  await voxline?.close();
});

describe('voxline server over real sockets', () => {
  it('speaks a message: accepted, its first audio at once, then 40 ms PCM frames at the session rate, one completed end', async () => {
    const c = await TestVoiceClient.start(url);
    const ready = c.messages()[0]!;
    expect(ready).toMatchObject({ type: 'session.ready', protocol: 1, format: { encoding: 'pcm_s16le', sampleRate: 24_000, channels: 1 } });
    c.send({ type: 'speak', id: 'hello', text: 'Hello there. This is voxline speaking.' });
    const end = await c.waitForEnd('hello');
    expect(end.reason, JSON.stringify(end)).toBe('completed');
    const frames = c.audioOf(end.stream);
    expect(frames.length).toBeGreaterThan(10);
    // The first frame carries whatever audio existed first (1..40 ms); every later frame but
    // the last is exactly 40 ms at 24 kHz; the last is 1..40 ms.
    expect(frames[0]!.length).toBeGreaterThan(0);
    expect(frames[0]!.length).toBeLessThanOrEqual(960);
    for (const f of frames.slice(1, -1)) expect(f.length).toBe(960);
    expect(frames.at(-1)!.length).toBeGreaterThan(0);
    const samples = frames.reduce((n, f) => n + f.length, 0);
    expect(end.stats).toMatchObject({ chunks: frames.length, bytes: samples * 2 });
    expect(end.stats.durationMs).toBe(Math.round((samples / 24_000) * 1000));
    // It is speech, not silence.
    const peak = frames.reduce((m, f) => f.reduce((a, s) => Math.max(a, Math.abs(s)), m), 0);
    expect(peak).toBeGreaterThan(1_000);
    assertContract(c.frames);
    c.close();
  });

  it('honours a requested rate it offers and speaks Arabic', async () => {
    const c = await TestVoiceClient.start(url, { format: { encoding: 'pcm_s16le', sampleRate: 16_000 } });
    expect(c.messages()[0]).toMatchObject({ format: { sampleRate: 16_000 } });
    c.send({ type: 'speak', id: 'ar', text: 'مرحبا بكم في تطبيقنا.', voice: 'ar' });
    const end = await c.waitForEnd('ar');
    expect(end.reason).toBe('completed');
    for (const f of c.audioOf(end.stream).slice(1, -1)) expect(f.length).toBe(640);
    c.close();
  });

  it('plays the second message after the first, every time', async () => {
    const c = await TestVoiceClient.start(url);
    for (let i = 0; i < 5; i++) {
      c.send({ type: 'speak', id: `m${i}`, text: `Message number ${i}.` });
      const end = await c.waitForEnd(`m${i}`);
      expect(end.reason).toBe('completed');
      expect(c.audioOf(end.stream).length).toBeGreaterThan(0);
    }
    assertContract(c.frames);
    c.close();
  });

  it('STOP mid-stream ends the utterance at once and no audio of it follows', async () => {
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'long', text: longText });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    const stopAt = performance.now();
    c.send({ type: 'stop' });
    const end = await c.waitForEnd('long');
    expect(end.reason).toBe('stopped');
    const endFrame = c.frames.find((f) => f.kind === 'message' && f.message.type === 'speak.end')!;
    expect(endFrame.at).toBeGreaterThanOrEqual(stopAt);
    await new Promise((r) => setTimeout(r, 300));
    assertContract(c.frames);
    await settle(() => voxline.engine.stats().upstreamJobs === 0);
    // The session goes on serving.
    c.send({ type: 'speak', id: 'after', text: 'Still here.' });
    expect((await c.waitForEnd('after')).reason).toBe('completed');
    c.close();
  });

  it('a new interrupt supersedes the playing utterance; enqueue plays after', async () => {
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'a', text: longText });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    c.send({ type: 'speak', id: 'b', text: 'Interrupting you.' });
    c.send({ type: 'speak', id: 'c', text: 'And then me.', mode: 'enqueue' });
    expect((await c.waitForEnd('a')).reason).toBe('superseded');
    expect((await c.waitForEnd('b')).reason).toBe('completed');
    expect((await c.waitForEnd('c')).reason).toBe('completed');
    assertContract(c.frames);
    c.close();
  });

  it('starts audio from incremental text before the final text arrives', async () => {
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'inc', text: 'The first sentence is complete. The sec', final: false });
    const accepted = await c.waitForMessage((m) => m.type === 'speak.accepted' && m.id === 'inc');
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    expect(c.messages().some((m) => m.type === 'speak.end')).toBe(false);
    c.send({ type: 'speak', id: 'inc', text: 'ond one ends here.', final: true });
    const end = await c.waitForEnd('inc');
    expect(end.reason).toBe('completed');
    expect(accepted.type).toBe('speak.accepted');
    expect(c.messages().filter((m) => m.type === 'speak.accepted')).toHaveLength(1);
    c.close();
  });

  it('serves 100 consecutive messages on one connection with no growth in live resources', async () => {
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'warm', text: 'Warm up.' });
    await c.waitForEnd('warm');
    await settle(() => voxline.engine.stats().upstreamJobs === 0);
    const baselineResources = process.getActiveResourcesInfo().length;
    const baselineStats = voxline.engine.stats();
    for (let i = 0; i < 100; i++) {
      c.send({ type: 'speak', id: `n${i}`, text: `Number ${i}.` });
      expect((await c.waitForEnd(`n${i}`)).reason).toBe('completed');
    }
    await settle(() => voxline.engine.stats().upstreamJobs === 0);
    const stats = voxline.engine.stats();
    expect(stats.sessions).toBe(baselineStats.sessions);
    expect(stats.utterancesEnded - baselineStats.utterancesEnded).toBe(100);
    expect(provider.pool.stats()).toMatchObject({ busy: 0, waiting: 0, warm: 2 });
    expect(process.getActiveResourcesInfo().length).toBeLessThanOrEqual(baselineResources + 2);
    assertContract(c.frames);
    c.close();
  });

  it('a disconnect mid-stream ends the utterance internally once and releases everything', async () => {
    const before = ends.length;
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'gone', text: longText });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    c.ws.terminate();
    await settle(() => ends.slice(before).some((e) => e.id === 'gone'));
    await settle(() => voxline.engine.stats().upstreamJobs === 0 && voxline.engine.stats().sessions === 0);
    expect(ends.slice(before).filter((e) => e.id === 'gone')).toEqual([
      expect.objectContaining({ reason: 'stopped', cause: 'client_gone' }),
    ]);
  });

  it('answers every kind of bad frame with the contract error, while a neighbour session is unaffected', async () => {
    const neighbour = await TestVoiceClient.start(url);
    neighbour.send({ type: 'speak', id: 'calm', text: longText.slice(0, 400) });

    const c = await TestVoiceClient.start(url);
    const cases: Array<[unknown, string]> = [
      ['{not json', 'bad_request'],
      [{ type: 'dance' }, 'unknown_type'],
      [{ no: 'type' }, 'bad_request'],
      [{ type: 'speak', text: 'no id' }, 'bad_request'],
      [{ type: 'speak', id: 'x', text: 42 }, 'bad_request'],
      [{ type: 'speak', id: '', text: 'empty id' }, 'bad_request'],
      [{ type: 'speak', id: 'big', text: 'y'.repeat(4_001) }, 'text_too_long'],
      [{ type: 'session.start' }, 'bad_request'],
      [[1, 2, 3], 'bad_request'],
    ];
    for (const [frame, code] of cases) {
      const count = c.messages().filter((m) => m.type === 'error').length;
      c.send(frame);
      const errors = await c.waitFor(() => {
        const e = c.messages().filter((m) => m.type === 'error');
        return e.length > count ? e : undefined;
      });
      expect(errors.at(-1)).toMatchObject({ type: 'error', code });
    }
    c.send({ type: 'speak', id: 'dup', text: 'One.' });
    await c.waitForEnd('dup');
    c.send({ type: 'speak', id: 'dup', text: 'Two.' });
    expect(await c.waitForMessage((m) => m.type === 'error' && m.code === 'duplicate_id')).toMatchObject({ id: 'dup' });
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await c.waitForMessage((m) => m.type === 'error' && m.message.includes('binary'));
    // The session still works after all that.
    c.send({ type: 'ping' });
    await c.waitForMessage((m) => m.type === 'pong');
    c.send({ type: 'speak', id: 'ok', text: 'Fine.' });
    expect((await c.waitForEnd('ok')).reason).toBe('completed');

    // Oversized frame: closed with 1009.
    c.send({ type: 'speak', id: 'huge', text: 'z'.repeat(70 * 1024) });
    expect(await c.waitForClose()).toBe(1009);

    expect((await neighbour.waitForEnd('calm')).reason).toBe('completed');
    expect(neighbour.messages().filter((m) => m.type === 'error')).toEqual([]);
    assertContract(neighbour.frames);
    neighbour.close();
  });

  it('observe: true reports each phase of the session once, in order with the frames it explains', async () => {
    const c = await TestVoiceClient.start(url, { observe: true });
    c.send({ type: 'speak', id: 'o', text: 'Observed.' });
    await c.waitForEnd('o');
    await c.waitFor(() => (c.messages().at(-1)?.type === 'session.state' && (c.messages().at(-1) as { state: string }).state === 'idle') || undefined);
    const seq = c.messages().map((m) => (m.type === 'session.state' ? `${m.state}:${m.path}` : m.type));
    expect(seq.slice(0, 4)).toEqual(['session.ready', 'idle:idle', 'speak.accepted', 'connecting:active.live.connecting.synthesizing']);
    const end = seq.indexOf('speak.end');
    expect(seq.slice(4, end)).toContain('streaming:active.live.streaming.flowing');
    // Completed, and its upstream already let go: straight back to idle (no wait in `stopping`).
    expect(seq.slice(end)).toEqual(['speak.end', 'idle:idle']);
    // A phase is reported when it changes, never twice in a row.
    const states = seq.filter((x) => x.includes(':'));
    expect(states.every((x, i) => i === 0 || x !== states[i - 1])).toBe(true);
    c.ws.close();
  });

  it('closes with 1008 after an error when the first frame is not session.start, or none comes in time', async () => {
    const wrong = await TestVoiceClient.connect(url);
    wrong.send({ type: 'speak', id: 'a', text: 'too early' });
    expect(await wrong.waitForClose()).toBe(1008);
    expect(wrong.messages()).toEqual([expect.objectContaining({ type: 'error', code: 'bad_request' })]);

    const silent = await TestVoiceClient.connect(url);
    expect(await silent.waitForClose()).toBe(1008);
    expect(silent.messages()).toEqual([expect.objectContaining({ type: 'error', code: 'handshake_timeout' })]);

    const garbage = await TestVoiceClient.connect(url);
    garbage.send('garbage');
    expect(await garbage.waitForClose()).toBe(1008);
    await settle(() => voxline.engine.stats().sessions === 0);
  });

  it('a crashed synth worker fails its utterance with provider_unavailable and is replaced', async () => {
    const c = await TestVoiceClient.start(url);
    c.send({ type: 'speak', id: 'crash', text: longText });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    const restarts = provider.pool.stats().restarts;
    for (const pid of provider.pool.pids()) process.kill(pid, 'SIGKILL');
    const end = await c.waitForEnd('crash');
    expect(end).toMatchObject({ reason: 'failed', error: { code: 'provider_unavailable' } });
    await settle(() => provider.pool.stats().warm === 2, 15_000);
    expect(provider.pool.stats().restarts).toBeGreaterThan(restarts);
    c.send({ type: 'speak', id: 'revived', text: 'Back again.' });
    expect((await c.waitForEnd('revived')).reason).toBe('completed');
    assertContract(c.frames);
    c.close();
  });

  it('a hung synth worker is killed and replaced; its utterance fails instead of hanging', async () => {
    const c = await TestVoiceClient.start(url);
    const pids = provider.pool.pids();
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      c.send({ type: 'speak', id: 'hang', text: 'Nobody will say this.' });
      const end = await c.waitForEnd('hang');
      expect(end).toMatchObject({ reason: 'failed', error: { code: 'provider_unavailable' } });
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          /* already replaced */
        }
      }
    }
    await settle(() => provider.pool.stats().warm === 2, 15_000);
    c.send({ type: 'speak', id: 'unhung', text: 'Working again.' });
    expect((await c.waitForEnd('unhung')).reason).toBe('completed');
    c.close();
  });

  it('serves health and readiness', async () => {
    const health = await fetch(`${httpUrl}/healthz`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${httpUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, draining: false });
    const page = await fetch(`${httpUrl}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/client/voxline-client.js');
    const client = await fetch(`${httpUrl}/client/voxline-client.js`);
    expect(client.headers.get('content-type')).toMatch(/javascript/);
    expect(await client.text()).toMatch(/VoiceClient = class|class VoiceClient/);
    expect((await fetch(`${httpUrl}/nope`)).status).toBe(404);
  });

});

describe('voxline server with API keys', () => {
  it('authenticates only through session.start: a URL token is ignored, a wrong token closes 1008', async () => {
    const secured = createVoxlineServer({ apiKeys: ['k-123'], espeakWorkers: 1, limits: { handshakeTimeoutMs: 2_000 } });
    const { url: base } = await secured.listen(0, '127.0.0.1');
    const endpoint = `${base.replace('http', 'ws')}/v1/voice`;
    try {
      const viaUrl = await TestVoiceClient.connect(`${endpoint}?token=k-123`);
      viaUrl.send({ type: 'session.start' });
      expect(await viaUrl.waitForClose()).toBe(1008);
      expect(viaUrl.messages()).toEqual([expect.objectContaining({ type: 'error', code: 'unauthorized' })]);

      const wrong = await TestVoiceClient.connect(endpoint);
      wrong.send({ type: 'session.start', token: 'k-124' });
      expect(await wrong.waitForClose()).toBe(1008);
      expect(JSON.stringify(wrong.messages())).not.toContain('k-12');

      const right = await TestVoiceClient.start(endpoint, { token: 'k-123' });
      expect(right.messages()[0]).toMatchObject({ type: 'session.ready' });
      right.close();
    } finally {
      await secured.close();
    }
  });
});
