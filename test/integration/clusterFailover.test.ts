// A gateway's death costs its clients nothing: two gateway processes and a synthesis worker
// joined by a real redis-server on 127.0.0.1, the deterministic tone voice on the worker (at
// 22.05 kHz, so the gateways resample to the session's 24 kHz). Clients streaming on gateway A at
// different points of a three-utterance script; A is killed with SIGKILL; each client resumes on
// B, which takes the session over from its Redis record (src/engine/sessionMove.ts) and replays
// what is owed from the same synthesis jobs. Every client's audio, across both connections, is
// sample-identical to an undisturbed run, each frame once, one speak.end per utterance.
// A gateway that is frozen (SIGSTOP) rather than dead is fenced: after it wakes it neither
// writes the session's record nor cancels the jobs its successor reads.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { connectRedis } from '../../src/cluster/redis.js';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { assertContract, resumeCursor, resumeScript, samplesById, TestVoiceClient, type ClientFrame } from '../support/voiceClient.js';

interface Child {
  url: string;
  child: ChildProcess;
  exited: Promise<void>;
}

let redis: RunningRedis;
const children: ChildProcess[] = [];

async function spawnReady(script: string, ready: RegExp, env: Record<string, string>): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, REDIS_URL: redis.url, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`${script} did not start: ${err.slice(-500)}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(deadline);
        resolve(m[1] ?? '');
      }
    });
    void exited.then(() => reject(new Error(`${script} exited: ${err.slice(-500)}`)));
  });
  return { url, child, exited };
}

// Paced near real time (100 ms blocks every 60 ms), so "mid-utterance" lasts long enough to hit.
const gateway = () => spawnReady('test/support/toneGateway.ts', /gateway listening on (\S+)/, { SYNTH: 'workers', LEASE_MS: '1500', RESUME_WINDOW_MS: '10000' });
const worker = () => spawnReady('test/support/toneWorker.ts', /tone worker (ready)/, { TONE_PAUSE_MS: '60', TONE_RATE: '22050' });

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

const withoutReady = (frames: readonly ClientFrame[]) => frames.filter((f) => !(f.kind === 'message' && f.message.type === 'session.ready'));
const audioCount = (c: TestVoiceClient) => c.frames.filter((f) => f.kind === 'audio').length;
const readyOf = (c: TestVoiceClient) => c.messages().find((m) => m.type === 'session.ready') as Extract<ServerMessage, { type: 'session.ready' }>;

async function resumeOn(url: string, dropped: TestVoiceClient, token = readyOf(dropped).resume!.token): Promise<TestVoiceClient> {
  const c = await TestVoiceClient.connect(url);
  c.send({ type: 'session.resume', sessionId: readyOf(dropped).sessionId, token, ...resumeCursor(dropped.frames) });
  await c.waitFor(() => c.messages().find((m) => m.type === 'session.ready' || m.type === 'error'), 10_000);
  return c;
}

/** Both connections' frames: every frame once, in order, the script's three ends, the reference's samples. */
async function expectWhole(dropped: TestVoiceClient, resumed: TestVoiceClient): Promise<void> {
  expect(resumed.messages()[0]).toMatchObject({ type: 'session.ready', sessionId: readyOf(dropped).sessionId, resumed: true });
  if (!dropped.messages().some((m) => m.type === 'speak.end' && m.id === 'u3')) await resumed.waitForEnd('u3', 20_000);
  const all = [...withoutReady(dropped.frames), ...withoutReady(resumed.frames)];
  assertContract(all);
  const ends = all.flatMap((f) => (f.kind === 'message' && f.message.type === 'speak.end' ? [[f.message.id, f.message.reason]] : []));
  expect(ends).toEqual([
    ['u1', 'completed'],
    ['u2', 'completed'],
    ['u3', 'completed'],
  ]);
  const heard = samplesById(all);
  for (const [id, samples] of reference) expect(heard.get(id), id).toEqual(samples);
}

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
});
