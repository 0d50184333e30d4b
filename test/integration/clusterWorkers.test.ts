// Synthesis workers on Redis Streams: one gateway (`--role gateway`) and two worker processes
// (`--role worker`, the embedded voice) joined by a real redis-server on 127.0.0.1. Speech goes
// gateway → job stream → a worker → the job's stream → gateway → client. A worker killed with
// SIGKILL while a dozen utterances stream: the ones whose piece it held end failed
// (provider_unavailable) once each within a few seconds, reclaimed by the other worker; all
// others complete; no utterance gets two ends or audio after its end. STOP racing completion
// at random moments ends each utterance once (completed or stopped) and leaves no job behind. A
// worker given SIGTERM takes no new job, finishes the ones it runs and exits 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { connectRedis } from '../../src/cluster/redis.js';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';
import { voxline } from '../support/voxlineProcess.js';

const claimIdleMs = 1_000;
let redis: RunningRedis;
const runs: Array<ReturnType<typeof voxline>> = [];
let gatewayUrl: string;
let workers: Array<ReturnType<typeof voxline>>;

function worker(extra: string[] = []) {
  const run = voxline(['serve', '--redis', redis.url, '--role', 'worker', '--claim-idle-ms', String(claimIdleMs), '--espeak-workers', '2', '--log-level', 'warn', ...extra], {
    until: /voxline worker ready/,
  });
  runs.push(run);
  return run;
}

beforeAll(async () => {
  redis = await startRedis();
  const gateway = voxline(['serve', '--port', '0', '--redis', redis.url, '--role', 'gateway', '--log-level', 'warn'], { until: /listening on http:\/\/\S+/ });
  runs.push(gateway);
  workers = [worker(), worker()];
  await Promise.all([gateway.ready, ...workers.map((w) => w.ready)]);
  gatewayUrl = `${/listening on (http:\/\/\S+)/.exec(gateway.run.stdout)![1]!.replace('http', 'ws')}/v1/voice`;
}, 60_000);

afterAll(async () => {
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await redis?.stop();
});

/** mulberry32: a small seeded PRNG, so a failing run repeats with its printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Wait until the job queue of espeak holds nothing (every job ended and acknowledged). */
async function queueEmpties(): Promise<void> {
  const admin = await connectRedis(redis.url);
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const length = await admin.xlen('voxline:jobs:espeak');
      if (length === 0) return;
      if (Date.now() > deadline) throw new Error(`${length} jobs left in the queue`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    admin.disconnect();
  }
}

/** `key=value` pairs of the worker's last stdout line starting with `prefix`. */
function countsOf(stdout: string, prefix: string): Record<string, number> {
  const line = stdout.split('\n').find((l) => l.startsWith(prefix));
  if (!line) throw new Error(`no "${prefix}" line in ${stdout}`);
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

const longText = Array.from({ length: 12 }, (_, i) => `This is sentence number ${i + 1} of a long answer.`).join(' ');

describe('synthesis workers on Redis Streams', () => {
  it('speaks through a worker: accepted, audio, one completed end', async () => {
    const c = await TestVoiceClient.start(gatewayUrl);
    c.send({ type: 'speak', id: 'hello', text: 'Hello there. This is a worker speaking.' });
    const end = await c.waitForEnd('hello', 15_000);
    expect(end.reason).toBe('completed');
    expect(c.audioOf(end.stream).length).toBeGreaterThan(10);
    assertContract(c.frames);
    c.close();
  });

  it('STOP racing completion at random moments over 48 utterances: one end each (completed or stopped), no audio after it, no job left', async () => {
    const seed = Number(process.env.VOXLINE_TEST_SEED ?? Date.now() % 2 ** 31);
    console.log(`STOP race seed ${seed} (VOXLINE_TEST_SEED=${seed} repeats it)`);
    const random = prng(seed);
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestVoiceClient.start(gatewayUrl)));
    const plans = clients.map((_, ci) =>
      Array.from({ length: 8 }, (_, round) => ({ id: `c${ci}r${round}`, delayMs: Math.floor(random() * 1_500), byId: random() < 0.5 })),
    );
    await Promise.all(
      clients.map(async (c, ci) => {
        for (const [round, plan] of plans[ci]!.entries()) {
          c.send({ type: 'speak', id: plan.id, text: `Short answer ${round} from client ${ci}. Then a little more.` });
          await new Promise((r) => setTimeout(r, plan.delayMs));
          c.send(plan.byId ? { type: 'stop', id: plan.id } : { type: 'stop' });
          await c.waitForEnd(plan.id, 20_000);
        }
      }),
    );
    // Late frames, if any, would arrive now.
    await new Promise((r) => setTimeout(r, 500));
    const reasons = new Map<string, number>();
    for (const [ci, c] of clients.entries()) {
      assertContract(c.frames);
      const ends = c.messages().flatMap((m) => (m.type === 'speak.end' ? [m] : []));
      expect(ends.map((e) => e.id), `client ${ci}, seed ${seed}`).toEqual(plans[ci]!.map((p) => p.id));
      for (const e of ends) {
        expect(['completed', 'stopped'], `${e.id}: ${JSON.stringify(e)}, seed ${seed}`).toContain(e.reason);
        reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
      }
      c.close();
    }
    console.log(`STOP race ends: ${JSON.stringify(Object.fromEntries(reasons))}`);
    await queueEmpties();
  }, 120_000);

  it('SIGKILL on a worker while 12 utterances stream: its ones end failed/provider_unavailable once, within seconds; the others complete', async () => {
    const clients = await Promise.all(Array.from({ length: 12 }, () => TestVoiceClient.start(gatewayUrl)));
    clients.forEach((c, i) => c.send({ type: 'speak', id: `long${i}`, text: longText }));
    // At least ten of them are streaming.
    await clients[0]!.waitFor(() => (clients.filter((c) => c.frames.some((f) => f.kind === 'audio')).length >= 10 ? true : undefined), 30_000);
    // …and every worker holds a job right now (so the one killed has pieces in flight).
    const admin = await connectRedis(redis.url);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const consumers = (await admin.xinfo('CONSUMERS', 'voxline:jobs:espeak', 'workers')) as Array<Array<string | number>>;
      const pending = consumers.map((c) => Number(c[c.indexOf('pending') + 1]));
      if (pending.length === 2 && pending.every((n) => n > 0)) break;
      if (Date.now() > deadline) throw new Error(`workers never both busy: ${JSON.stringify(pending)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    admin.disconnect();
    const killedAt = performance.now();
    workers[0]!.child.kill('SIGKILL');
    const ends = await Promise.all(clients.map((c, i) => c.waitForEnd(`long${i}`, 30_000)));
    for (const c of clients) assertContract(c.frames);
    const failed = ends.filter((e) => e.reason !== 'completed');
    for (const e of failed) expect(e).toMatchObject({ reason: 'failed', error: { code: 'provider_unavailable' } });
    // Only what the dead worker held: it runs two pieces at once, each of one utterance.
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed.length).toBeLessThanOrEqual(2);
    expect(ends.filter((e) => e.reason === 'completed').length).toBe(12 - failed.length);
    // Each failed end came within seconds of the kill (the claim timeout, a reclaim round, slack for a busy machine).
    for (const [i, e] of ends.entries()) {
      if (e.reason === 'completed') continue;
      const at = clients[i]!.frames.find((f) => f.kind === 'message' && (f.message as ServerMessage).type === 'speak.end')!.at;
      expect(at - killedAt).toBeLessThan(claimIdleMs + 8_000);
    }
    for (const c of clients) c.close();
  }, 60_000);

  it('SIGTERM on a worker: it takes no new job, finishes the ones it runs and exits 0; every utterance completes', async () => {
    const draining = worker(['--port', '0', '--drain-ms', '30000']);
    await draining.ready;
    const http = /worker ready \(espeak\) on (http:\/\/\S+)/.exec(draining.run.stdout)![1]!;
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestVoiceClient.start(gatewayUrl)));
    clients.forEach((c, i) => c.send({ type: 'speak', id: `d${i}`, text: longText }));
    // It runs jobs now.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const text = await (await fetch(`${http}/metrics`)).text();
      if (/^voxline_worker_jobs_running\{provider="espeak"\} [1-9]/m.test(text)) break;
      if (Date.now() > deadline) throw new Error('the worker never took a job');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Readiness, asked every few ms from the signal until the worker's HTTP closes: its running
    // jobs may finish (and it exit) within milliseconds, so one request after the drain log could
    // come too late.
    const readiness: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        try {
          readiness.push((await fetch(`${http}/readyz`)).status);
        } catch {
          return; // closed: the worker is exiting
        }
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    draining.child.kill('SIGTERM');
    await clients[0]!.waitFor(() => (draining.run.stdout.includes('voxline worker draining') ? true : undefined), 10_000);
    const atDrain = countsOf(draining.run.stdout, 'voxline worker draining');
    // Utterances queued from now on are the other worker's.
    const later = await Promise.all(Array.from({ length: 3 }, () => TestVoiceClient.start(gatewayUrl)));
    later.forEach((c, i) => c.send({ type: 'speak', id: `after${i}`, text: `Queued after the drain began, number ${i}.` }));
    const ends = await Promise.all([...clients.map((c, i) => c.waitForEnd(`d${i}`, 60_000)), ...later.map((c, i) => c.waitForEnd(`after${i}`, 60_000))]);
    for (const e of ends) expect(e.reason, JSON.stringify(e)).toBe('completed');
    for (const c of [...clients, ...later]) {
      assertContract(c.frames);
      c.close();
    }
    const exit = await draining.exited;
    expect(exit.code).toBe(0);
    polling = false;
    await poller;
    // Draining: not ready, still scraped; once not ready, never ready again.
    const firstNotReady = readiness.indexOf(503);
    expect(firstNotReady, JSON.stringify(readiness)).toBeGreaterThanOrEqual(0);
    expect(readiness.slice(firstNotReady).every((status) => status === 503), JSON.stringify(readiness)).toBe(true);
    const atStop = countsOf(exit.stdout, 'voxline worker stopped');
    // Exactly the jobs it ran at the drain finished, each done; nothing taken after it.
    expect(atDrain.running).toBeGreaterThanOrEqual(1);
    expect(atStop).toEqual({ ...atDrain, running: 0, done: atDrain.done! + atDrain.running! });
    await queueEmpties();
  }, 120_000);

  it('a drain past --drain-ms: the jobs still running end failed (provider_unavailable) once, the worker exits 0', async () => {
    const hasty = worker(['--port', '0', '--drain-ms', '0']);
    await hasty.ready;
    const http = /worker ready \(espeak\) on (http:\/\/\S+)/.exec(hasty.run.stdout)![1]!;
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestVoiceClient.start(gatewayUrl)));
    clients.forEach((c, i) => c.send({ type: 'speak', id: `h${i}`, text: longText }));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const text = await (await fetch(`${http}/metrics`)).text();
      if (/^voxline_worker_jobs_running\{provider="espeak"\} [1-9]/m.test(text)) break;
      if (Date.now() > deadline) throw new Error('the worker never took a job');
      await new Promise((r) => setTimeout(r, 5));
    }
    hasty.child.kill('SIGTERM');
    const exit = await hasty.exited;
    expect(exit.code).toBe(0);
    const atDrain = countsOf(exit.stdout, 'voxline worker draining');
    const atStop = countsOf(exit.stdout, 'voxline worker stopped');
    expect(atStop.running).toBe(0);
    // Every job it held ended once: done if it finished in the instant left, else failed.
    expect(atStop.done! + atStop.failed!).toBe(atDrain.done! + atDrain.failed! + atDrain.running!);
    expect(atStop.failed! - atDrain.failed!).toBeGreaterThanOrEqual(1);
    const ends = await Promise.all(clients.map((c, i) => c.waitForEnd(`h${i}`, 60_000)));
    for (const e of ends) if (e.reason !== 'completed') expect(e).toMatchObject({ reason: 'failed', error: { code: 'provider_unavailable' } });
    // One failed job fails its utterance (an utterance may hold two: its piece and the look-ahead).
    const failedUtterances = ends.filter((e) => e.reason === 'failed').length;
    expect(failedUtterances).toBeGreaterThanOrEqual(1);
    expect(failedUtterances).toBeLessThanOrEqual(atStop.failed! - atDrain.failed!);
    for (const c of clients) {
      assertContract(c.frames);
      c.close();
    }
    await queueEmpties();
  }, 120_000);
});
