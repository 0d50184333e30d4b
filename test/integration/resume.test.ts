// Resuming a session in one process (wire contract v2, "Resuming a session") over real sockets on
// 127.0.0.1: a connection dropped mid-utterance and resumed within the window gets every frame
// exactly once, in order, sample-identical to an undisturbed run; after the window, or with the
// wrong token, or once what it missed is no longer kept, resume_failed and a 1008 close, and
// everything the session held is released.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import type { UtteranceEndedEvent } from '../../src/engine/voiceEngine.js';
import type { ServerMessage } from '../../machines/types.js';
import { assertContract, resumeCursor, resumeScript, samplesById, TestVoiceClient, type ClientFrame } from '../support/voiceClient.js';
import { ToneProvider } from '../support/toneProvider.js';

interface Running {
  server: VoxlineServer;
  url: string;
  ends: UtteranceEndedEvent[];
  accepted: Array<{ sessionId: string; stream: number }>;
}

async function start(options: { windowMs: number; maxLogBytes: number; pauseMs: number }): Promise<Running> {
  const server = createVoxlineServer({
    providers: [new ToneProvider({ pauseMs: options.pauseMs })],
    resume: { windowMs: options.windowMs, maxLogBytes: options.maxLogBytes },
    limits: { handshakeTimeoutMs: 2_000 },
    heartbeatIntervalMs: 0,
  });
  const running: Running = { server, url: '', ends: [], accepted: [] };
  server.engine.on('utteranceEnded', (e) => running.ends.push(e));
  server.engine.on('utteranceAccepted', (e) => running.accepted.push({ sessionId: e.sessionId, stream: e.stream }));
  const { url } = await server.listen(0, '127.0.0.1');
  running.url = `${url.replace('http', 'ws')}/v1/voice`;
  return running;
}

// Three utterances, the last two queued: about 2.4, 1.6 and 1.2 s of audio.
const script = resumeScript;

let main: Running;
let tight: Running;
/** The undisturbed run: each utterance's samples, in order. */
const reference = new Map<string, Int16Array>();

beforeAll(async () => {
  main = await start({ windowMs: 3_000, maxLogBytes: 2 * 1024 * 1024, pauseMs: 20 });
  tight = await start({ windowMs: 800, maxLogBytes: 256 * 1024, pauseMs: 5 });
  const c = await TestVoiceClient.start(main.url, { resume: true });
  for (const frame of script) c.send(frame);
  await c.waitForEnd('u3');
  assertContract(c.frames);
  for (const [id, samples] of samplesById(c.frames)) reference.set(id, samples);
  expect([...reference.keys()]).toEqual(['u1', 'u2', 'u3']);
  c.close();
});

afterAll(async () => {
  await main?.server.close();
  await tight?.server.close();
});


const withoutReady = (frames: readonly ClientFrame[]) => frames.filter((f) => !(f.kind === 'message' && f.message.type === 'session.ready'));
const audioCount = (c: TestVoiceClient) => c.frames.filter((f) => f.kind === 'audio').length;
const readyOf = (c: TestVoiceClient) => c.messages().find((m) => m.type === 'session.ready') as Extract<ServerMessage, { type: 'session.ready' }>;

async function resume(url: string, dropped: TestVoiceClient, override: Record<string, unknown> = {}): Promise<TestVoiceClient> {
  const ready = readyOf(dropped);
  const c = await TestVoiceClient.connect(url);
  c.send({ type: 'session.resume', sessionId: ready.sessionId, token: ready.resume!.token, ...resumeCursor(dropped.frames), ...override });
  await c.waitFor(() => c.messages().find((m) => m.type === 'session.ready' || m.type === 'error'));
  return c;
}

async function waitUntil(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('resuming a session in one process', () => {
  it('offers a resume only to a client that asks; a version 1 client sees protocol 1 and its session ends with its connection', async () => {
    const before = main.server.engine.stats().sessions;
    const v1 = await TestVoiceClient.start(main.url);
    const ready = readyOf(v1);
    expect(ready.protocol).toBe(1);
    expect(ready).not.toHaveProperty('resume');
    v1.send(script[0]);
    await v1.waitFor(() => (audioCount(v1) > 2 ? true : undefined));
    v1.terminate();
    await waitUntil(() => main.server.engine.stats().sessions === before, 2_000, 'the version 1 session to end');
    // Its id names nothing resumable.
    const c = await TestVoiceClient.connect(main.url);
    c.send({ type: 'session.resume', sessionId: ready.sessionId, token: 'x', lastStream: 1, streams: { '1': 2 } });
    const error = await c.waitForMessage((m) => m.type === 'error');
    expect(error).toMatchObject({ code: 'resume_failed' });
    expect(await c.waitForClose()).toBe(1008);

    const v2 = await TestVoiceClient.start(main.url, { resume: true });
    expect(readyOf(v2)).toMatchObject({ protocol: 2, resume: { windowMs: 3_000 } });
    expect(readyOf(v2).resume!.token.length).toBeGreaterThanOrEqual(32);
    v2.close();
  });

  // Drop points: before any audio, early in u1, late in u1, inside u2; resumed at once (the
  // utterance still plays: replay, then live) or after everything ended (replay only).
  for (const [dropAfter, detachMs] of [
    [0, 0],
    [3, 0],
    [17, 40],
    [45, 0],
    [70, 0],
    [5, 1_200],
  ] as const) {
    it(`dropped after ${dropAfter} audio frames, resumed ${detachMs} ms later: every frame once, in order, sample-identical, one speak.end each`, async () => {
      const dropped = await TestVoiceClient.start(main.url, { resume: true });
      for (const frame of script) dropped.send(frame);
      if (dropAfter > 0) await dropped.waitFor(() => (audioCount(dropped) >= dropAfter ? true : undefined));
      else await dropped.waitForMessage((m) => m.type === 'speak.accepted');
      dropped.terminate();
      const sessionId = readyOf(dropped).sessionId;
      await waitUntil(() => main.server.engine.stats().detachedSessions > 0 || main.ends.some((e) => e.sessionId === sessionId && e.id === 'u3'), 2_000, 'the drop to be seen');
      if (detachMs > 0) await new Promise((r) => setTimeout(r, detachMs));

      const resumed = await resume(main.url, dropped);
      expect(resumed.messages()[0]).toMatchObject({ type: 'session.ready', sessionId, resumed: true, protocol: 2 });
      const ended = dropped.messages().some((m) => m.type === 'speak.end' && m.id === 'u3');
      if (!ended) await resumed.waitForEnd('u3');
      const all = [...withoutReady(dropped.frames), ...withoutReady(resumed.frames)];
      assertContract(all);
      const ends = all.flatMap((f) => (f.kind === 'message' && f.message.type === 'speak.end' ? [f.message] : []));
      expect(ends.map((e) => [e.id, e.reason])).toEqual([
        ['u1', 'completed'],
        ['u2', 'completed'],
        ['u3', 'completed'],
      ]);
      const heard = samplesById(all);
      for (const [id, samples] of reference) expect(heard.get(id), id).toEqual(samples);
      resumed.close();
    });
  }

  it('a wrong token gets resume_failed and a 1008 close; the rightful client still resumes', async () => {
    const dropped = await TestVoiceClient.start(main.url, { resume: true });
    dropped.send(script[0]);
    await dropped.waitFor(() => (audioCount(dropped) >= 4 ? true : undefined));
    dropped.terminate();
    await waitUntil(() => main.server.engine.stats().detachedSessions > 0, 2_000, 'the drop to be seen');
    const wrongToken = readyOf(dropped).resume!.token.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    const thief = await resume(main.url, dropped, { token: wrongToken });
    expect(thief.messages()).toEqual([expect.objectContaining({ type: 'error', code: 'resume_failed' })]);
    expect(await thief.waitForClose()).toBe(1008);
    expect(thief.frames.some((f) => f.kind === 'audio')).toBe(false);

    const resumed = await resume(main.url, dropped);
    const end = dropped.messages().some((m) => m.type === 'speak.end') ? null : await resumed.waitForEnd('u1');
    if (end) expect(end.reason).toBe('completed');
    const all = [...withoutReady(dropped.frames), ...withoutReady(resumed.frames)];
    assertContract(all);
    expect(samplesById(all).get('u1')).toEqual(reference.get('u1'));
    expect(main.server.engine.stats().resumes).toMatchObject({ wrong_token: 1 });
    resumed.close();
  });

  it('session.resume after session.start is a bad_request and the session goes on', async () => {
    const c = await TestVoiceClient.start(main.url, { resume: true });
    const ready = readyOf(c);
    c.send({ type: 'session.resume', sessionId: ready.sessionId, token: ready.resume!.token, lastStream: 0 });
    expect(await c.waitForMessage((m) => m.type === 'error')).toMatchObject({ code: 'bad_request' });
    c.send({ type: 'speak', id: 'x', text: 'Still here.' });
    expect((await c.waitForEnd('x')).reason).toBe('completed');
    c.close();
  });

  it('after the window: resume_failed, and every utterance ended once (heard by nobody) with everything released', async () => {
    const dropped = await TestVoiceClient.start(tight.url, { resume: true });
    // About 40 s of audio: still playing when the window runs out.
    dropped.send({ type: 'speak', id: 'long', text: 'A sentence that goes on. '.repeat(80) });
    dropped.send({ type: 'speak', id: 'queued', text: 'Never heard.', mode: 'enqueue' });
    await dropped.waitFor(() => (audioCount(dropped) >= 3 ? true : undefined));
    dropped.terminate();
    const sessionId = readyOf(dropped).sessionId;
    await waitUntil(() => tight.server.engine.stats().detachedSessions === 1, 2_000, 'the drop to be seen');
    await waitUntil(() => tight.server.engine.stats().sessions === 0, 3_000, 'the window to run out');
    const late = await resume(tight.url, dropped);
    expect(late.messages()).toEqual([expect.objectContaining({ type: 'error', code: 'resume_failed' })]);
    expect(await late.waitForClose()).toBe(1008);
    const ends = tight.ends.filter((e) => e.sessionId === sessionId);
    expect(ends.map((e) => [e.id, e.reason, e.cause])).toEqual([
      ['long', 'stopped', 'client_gone'],
      ['queued', 'stopped', 'client_gone'],
    ]);
    await waitUntil(() => tight.server.engine.stats().upstreamJobs === 0, 2_000, 'the upstream to be released');
    expect(tight.server.engine.stats()).toMatchObject({ sessions: 0, upstreamJobs: 0, detachedSessions: 0, outboundLogBytes: 0, heldAudioBytes: 0 });
    // The gauges say the same over HTTP.
    const metrics = await (await fetch(`${tight.url.replace('ws', 'http').replace('/v1/voice', '')}/metrics`)).text();
    for (const gauge of ['voxline_sessions', 'voxline_upstream_jobs', 'voxline_sessions_detached', 'voxline_outbound_log_bytes', 'voxline_held_audio_bytes']) {
      expect(metrics, gauge).toMatch(new RegExp(`^${gauge} 0$`, 'm'));
    }
    expect(metrics).toMatch(/^voxline_resumes_total\{outcome="unknown_session"\} 1$/m);
  });

  it('missed audio no longer kept (over the log bound): resume_failed, and the session is released at once', async () => {
    const dropped = await TestVoiceClient.start(tight.url, { resume: true });
    dropped.send({ type: 'speak', id: 'long', text: 'A sentence that goes on. '.repeat(80) });
    await dropped.waitFor(() => (audioCount(dropped) >= 2 ? true : undefined));
    dropped.terminate();
    const sessionId = readyOf(dropped).sessionId;
    // 256 KiB is about 5.5 s of audio at 24 kHz: made in about 300 ms at this provider's pace.
    await waitUntil(() => tight.server.engine.stats().outboundLogBytes > 200 * 1024, 3_000, 'the log to fill');
    await new Promise((r) => setTimeout(r, 300));
    const late = await resume(tight.url, dropped);
    expect(late.messages()).toEqual([expect.objectContaining({ type: 'error', code: 'resume_failed' })]);
    expect((late.messages()[0] as { message: string }).message).toMatch(/^frames_gone/);
    expect(await late.waitForClose()).toBe(1008);
    await waitUntil(() => tight.server.engine.stats().sessions === 0, 2_000, 'the session to be released');
    expect(tight.ends.filter((e) => e.sessionId === sessionId).map((e) => [e.id, e.reason])).toEqual([['long', 'stopped']]);
    expect(tight.server.engine.stats()).toMatchObject({ detachedSessions: 0, outboundLogBytes: 0 });
  });
});
