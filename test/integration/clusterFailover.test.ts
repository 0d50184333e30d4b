// A gateway's death costs its clients nothing: two gateway processes and a synthesis worker
// joined by a real redis-server on 127.0.0.1, the deterministic tone voice on the worker (at
// 22.05 kHz, so the gateways resample to the session's 24 kHz). Clients streaming on gateway A at
// different points of a three-utterance script; A is killed with SIGKILL; each client resumes on
// B, which takes the session over from its Redis record (src/engine/sessionMove.ts) and replays
// what is owed from the same synthesis jobs. Every client's audio, across both connections, is
// sample-identical to an undisturbed run, each frame once, one speak.end per utterance.
// A gateway that is frozen (SIGSTOP) rather than dead is fenced: after it wakes it neither
// writes the session's record nor cancels the jobs its successor reads.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../src/cluster/redis.js';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { audioCount, expectScriptWhole, readyOf, resumeOn, spawnReady, withoutReady, type ReadyChild } from '../support/clusterProcesses.js';
import { assertContract, resumeCursor, resumeScript, samplesById, TestVoiceClient } from '../support/voiceClient.js';

type Child = ReadyChild;

let redis: RunningRedis;
const children: ChildProcess[] = [];

// Paced near real time (100 ms blocks every 60 ms), so "mid-utterance" lasts long enough to hit.
const gateway = () => spawnReady('test/support/toneGateway.ts', /gateway listening on (\S+)/, { REDIS_URL: redis.url, SYNTH: 'workers', LEASE_MS: '1500', RESUME_WINDOW_MS: '10000' }, children);
const worker = () => spawnReady('test/support/toneWorker.ts', /tone worker (ready)/, { REDIS_URL: redis.url, TONE_PAUSE_MS: '60', TONE_RATE: '22050' }, children);

const script = resumeScript;
const reference = new Map<string, Int16Array>();
let b: Child;

beforeAll(async () => {
  redis = await startRedis();
  [b] = await Promise.all([gateway(), worker()]);
  const c = await TestVoiceClient.start(b.url, { resume: true });
  for (const frame of script) c.send(frame);
  await c.waitForEnd('u3', 20_000);
  for (const [id, samples] of samplesById(c.frames)) reference.set(id, samples);
  c.close();
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await redis?.stop();
});

const expectWhole = (dropped: TestVoiceClient, resumed: TestVoiceClient) => expectScriptWhole(reference, dropped, resumed);

describe('a gateway that dies: its sessions move to another', () => {
  it('SIGKILL on gateway A mid-utterance: four clients at different points resume on B, sample-identical, one end each, and go on live', async () => {
    const a = await gateway();
    const clients: TestVoiceClient[] = [];
    // Staggered starts: when A dies the clients are at different points of the script.
    for (let i = 0; i < 4; i++) {
      const c = await TestVoiceClient.start(a.url, { resume: true });
      for (const frame of script) c.send(frame);
      await c.waitFor(() => (audioCount(c) >= 2 ? true : undefined), 10_000);
      clients.push(c);
      if (i < 3) await new Promise((r) => setTimeout(r, 250));
    }
    // One more lost its connection before A died (detached on A): what A sent it meanwhile never arrived.
    const detached = await TestVoiceClient.start(a.url, { resume: true });
    for (const frame of script) detached.send(frame);
    await detached.waitFor(() => (audioCount(detached) >= 5 ? true : undefined), 10_000);
    detached.terminate();
    await new Promise((r) => setTimeout(r, 150));
    a.child.kill('SIGKILL');
    await a.exited;
    for (const c of clients) expect(await c.waitForClose()).toBe(1006);
    // At least one was cut inside an utterance, and the points differ.
    const points = clients.map(audioCount);
    expect(new Set(points).size).toBeGreaterThan(1);
    for (const c of [...clients, detached]) {
      const resumed = await resumeOn(b.url, c);
      await expectWhole(c, resumed);
      resumed.send({ type: 'speak', id: 'after', text: 'And one more, live.' });
      expect((await resumed.waitForEnd('after', 10_000)).reason).toBe('completed');
      resumed.close();
    }
  });

  it('a moved session refuses a wrong token (resume_failed, 1008) and leaves the right client’s session alone; every key of it expires', async () => {
    const a = await gateway();
    const c = await TestVoiceClient.start(a.url, { resume: true });
    for (const frame of script) c.send(frame);
    await c.waitFor(() => (audioCount(c) >= 3 ? true : undefined), 10_000);
    a.child.kill('SIGKILL');
    await a.exited;
    const thief = await resumeOn(b.url, c, 'x'.repeat(43));
    expect(thief.messages()[0]).toMatchObject({ type: 'error', code: 'resume_failed' });
    expect((thief.messages()[0] as { message: string }).message).toMatch(/^wrong_token/);
    expect(await thief.waitForClose()).toBe(1008);
    const resumed = await resumeOn(b.url, c);
    await expectWhole(c, resumed);
    // Nothing of the session outlives its window: the record and its jobs' keys all expire.
    const admin = await connectRedis(redis.url);
    const id = readyOf(c).sessionId;
    const ttl = await admin.pttl(`voxline:record:${id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000 + 1_500);
    const jobKeys = await admin.keys(`voxline:job:${id}:*`);
    expect(jobKeys.length).toBeGreaterThan(0);
    for (const k of jobKeys) expect(await admin.pttl(k), k).toBeGreaterThan(0);
    admin.disconnect();
    resumed.close();
  });

  it('a frozen gateway (SIGSTOP) is fenced: its session moves to B, and once it wakes it neither writes the record nor cuts B’s audio', async () => {
    const a = await gateway();
    const c = await TestVoiceClient.start(a.url, { resume: true });
    for (const frame of script) c.send(frame);
    await c.waitFor(() => (audioCount(c) >= 3 ? true : undefined), 10_000);
    a.child.kill('SIGSTOP');
    c.terminate(); // the client gives up on the frozen gateway
    // B's relay to A cannot complete its handshake (A is frozen): after its deadline B takes the session over.
    const resumed = await resumeOn(b.url, c);
    expect(resumed.messages()[0]).toMatchObject({ type: 'session.ready', resumed: true });
    const admin = await connectRedis(redis.url);
    const key = `voxline:record:${readyOf(c).sessionId}`;
    const epochAfterMove = await admin.hget(key, 'epoch');
    expect(Number(epochAfterMove)).toBeGreaterThan(1);
    a.child.kill('SIGCONT');
    await expectWhole(c, resumed);
    // A woke with a session it no longer owns: its writes were refused, the directory still names B.
    expect(await admin.hget(key, 'epoch')).toBe(epochAfterMove);
    expect(await admin.get(`voxline:session:${readyOf(c).sessionId}`)).toBe(b.url);
    admin.disconnect();
    // A resume that reaches the woken gateway is not served from its stale copy: it asks the
    // directory, lets its copy go and relays the client to B, which holds the session.
    const heard = [...withoutReady(c.frames), ...withoutReady(resumed.frames)];
    const again = await TestVoiceClient.connect(a.url);
    again.send({ type: 'session.resume', sessionId: readyOf(c).sessionId, token: readyOf(c).resume!.token, ...resumeCursor(heard) });
    await again.waitFor(() => again.messages().find((m) => m.type === 'session.ready' || m.type === 'error'), 10_000);
    expect(again.messages()[0], JSON.stringify(again.messages()[0])).toMatchObject({ type: 'session.ready', sessionId: readyOf(c).sessionId, resumed: true });
    expect(await resumed.waitForClose()).toBe(1000); // B's old connection gave way to the new one
    again.send({ type: 'speak', id: 'after', text: 'Still the same session.' });
    expect((await again.waitForEnd('after', 10_000)).reason).toBe('completed');
    assertContract([...heard, ...withoutReady(again.frames)]);
    again.close();
    a.child.kill('SIGKILL');
  });

  // Last: it stops Redis.
  it('Redis away, then restarted empty, while a dead gateway’s client resumes: resume_failed each time (unavailable, then unknown_session), within seconds', async () => {
    const a = await gateway();
    const c = await TestVoiceClient.start(a.url, { resume: true });
    for (const frame of script) c.send(frame);
    await c.waitFor(() => (audioCount(c) >= 3 ? true : undefined), 10_000);
    a.child.kill('SIGKILL');
    await a.exited;
    await redis.stop();
    for (const expected of [/^unavailable/, /^unknown_session/]) {
      const startedAt = Date.now();
      const resumed = await resumeOn(b.url, c);
      expect(resumed.messages()[0]).toMatchObject({ type: 'error', code: 'resume_failed' });
      expect((resumed.messages()[0] as { message: string }).message).toMatch(expected);
      expect(await resumed.waitForClose()).toBe(1008);
      expect(Date.now() - startedAt).toBeLessThan(5_000);
      // Back, empty (no persistence): the record went with it.
      if (expected.source === '^unavailable') {
        redis = await startRedis(redis.port);
        await new Promise((r) => setTimeout(r, 2_500)); // B's connections come back (reconnect backoff ≤ 2 s)
      }
    }
  });
});
