// Cluster metrics over real sockets: a gateway (`--role gateway`) and, later, a worker
// (`--role worker --port 0`, the embedded voice) joined by a real redis-server on 127.0.0.1.
// Jobs queued while no worker runs show in the gateway's queue depth and oldest age; once a
// worker runs they drain and its job counters move; its HTTP answers /metrics, /healthz and
// /readyz and nothing else; with Redis frozen a scrape still answers, without queue series.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';
import { voxline } from '../support/voxlineProcess.js';

let redis: RunningRedis;
const runs: Array<ReturnType<typeof voxline>> = [];
let gatewayHttp: string;
let gatewayUrl: string;
let workerHttp: string;

beforeAll(async () => {
  redis = await startRedis();
  const gateway = voxline(['serve', '--port', '0', '--redis', redis.url, '--role', 'gateway', '--log-level', 'warn'], { until: /listening on http:\/\/\S+/ });
  runs.push(gateway);
  await gateway.ready;
  gatewayHttp = /listening on (http:\/\/\S+)/.exec(gateway.run.stdout)![1]!;
  gatewayUrl = `${gatewayHttp.replace('http', 'ws')}/v1/voice`;
}, 60_000);

afterAll(async () => {
  if (redis?.child.exitCode === null) redis.child.kill('SIGCONT');
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await redis?.stop();
});

/** One scrape, parsed: series (name with labels, as exposed) → value. A hang fails after 5 s. */
async function scrape(base: string): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5_000) });
  expect(res.status).toBe(200);
  const series = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const depth = 'voxline_synth_queue_depth{provider="espeak"}';
const oldest = 'voxline_synth_queue_oldest_seconds{provider="espeak"}';

describe('cluster metrics', () => {
  let waiting: TestVoiceClient[] = [];

  it('a gateway with no worker: queued jobs raise the queue depth, the oldest job ages', async () => {
    const before = await scrape(gatewayHttp);
    expect(before.get('voxline_cluster_role{role="gateway"}')).toBe(1);
    expect(before.get('voxline_cluster_redis_up')).toBe(1);
    expect(before.get(depth)).toBe(0);
    expect(before.get('voxline_cluster_sessions_owned')).toBe(0);
    expect(before.get('voxline_cluster_relays{direction="out"}')).toBe(0);

    waiting = await Promise.all(Array.from({ length: 3 }, () => TestVoiceClient.start(gatewayUrl, { resume: true })));
    waiting.forEach((c, i) => c.send({ type: 'speak', id: `w${i}`, text: `Waiting for a worker, number ${i}.` }));
    const queued = await until(async () => {
      const s = await scrape(gatewayHttp);
      return (s.get(depth) ?? 0) >= 3 ? s : undefined;
    }, 'three jobs queued');
    expect(queued.get('voxline_synth_queue_pending{provider="espeak"}')).toBe(0); // no worker took any
    expect(queued.get('voxline_cluster_sessions_owned')).toBe(3);
    await new Promise((r) => setTimeout(r, 500));
    expect((await scrape(gatewayHttp)).get(oldest)).toBeGreaterThanOrEqual(0.4);
  });

  it('a worker (--port 0) takes the queue: depth back to 0, its job counters move, its HTTP answers only its routes', async () => {
    const worker = voxline(['serve', '--port', '0', '--redis', redis.url, '--role', 'worker', '--espeak-workers', '2', '--log-level', 'warn'], {
      until: /voxline worker ready \(espeak\) on http:\/\/\S+/,
    });
    runs.push(worker);
    await worker.ready;
    workerHttp = /worker ready \(espeak\) on (http:\/\/\S+)/.exec(worker.run.stdout)![1]!;
    // The jobs queued before it ran are its (served, or cancelled if their utterance timed out).
    const ends = await Promise.all(waiting.map((c, i) => c.waitForEnd(`w${i}`, 30_000)));
    for (const e of ends) expect(['completed', 'failed']).toContain(e.reason);
    const c = await TestVoiceClient.start(gatewayUrl);
    c.send({ type: 'speak', id: 'now', text: 'A worker speaks now.' });
    expect((await c.waitForEnd('now', 20_000)).reason).toBe('completed');
    assertContract(c.frames);
    c.close();
    for (const w of waiting) w.close();

    const s = await until(async () => {
      const m = await scrape(workerHttp);
      const finished = ['done', 'failed', 'cancelled'].reduce((n, status) => n + (m.get(`voxline_worker_jobs_total{provider="espeak",status="${status}"}`) ?? 0), 0);
      return finished >= 4 && m.get(depth) === 0 ? m : undefined;
    }, 'the worker finished the four jobs and the queue is empty');
    expect(s.get('voxline_cluster_role{role="worker"}')).toBe(1);
    expect(s.get('voxline_worker_jobs_total{provider="espeak",status="done"}')).toBeGreaterThanOrEqual(1);
    expect(s.get('voxline_worker_jobs_running{provider="espeak"}')).toBe(0);
    expect(s.get('voxline_worker_jobs_reclaimed_total{provider="espeak"}')).toBe(0);
    expect(s.get(oldest)).toBe(0);
    expect(s.get('voxline_cluster_redis_up')).toBe(1);
    expect((await scrape(gatewayHttp)).get(depth)).toBe(0);

    expect((await fetch(`${workerHttp}/healthz`)).status).toBe(200);
    const ready = await fetch(`${workerHttp}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, draining: false });
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/v1/voice'],
      ['POST', '/metrics'],
      ['GET', '/metrics/../x'],
    ] as const) {
      const res = await fetch(`${workerHttp}${path}`, { method, signal: AbortSignal.timeout(5_000) });
      expect(res.status, `${method} ${path}`).toBe(404);
      await res.arrayBuffer();
    }
  }, 90_000);

  it('Redis frozen: scrapes still answer, with redis_up 0 and no queue series; back once it thaws', async () => {
    redis.child.kill('SIGSTOP');
    try {
      for (const base of [gatewayHttp, workerHttp]) {
        const s = await scrape(base);
        expect(s.get('voxline_cluster_redis_up'), base).toBe(0);
        expect(s.has(depth), base).toBe(false);
        expect(s.has(oldest), base).toBe(false);
        expect(s.get('voxline_cluster_role{role="gateway"}') ?? s.get('voxline_cluster_role{role="worker"}')).toBe(1);
      }
    } finally {
      redis.child.kill('SIGCONT');
    }
    for (const base of [gatewayHttp, workerHttp]) {
      const s = await until(async () => {
        const m = await scrape(base);
        return m.get('voxline_cluster_redis_up') === 1 ? m : undefined;
      }, `${base} sees Redis again`);
      expect(s.get(depth)).toBe(0);
    }
  }, 60_000);
});
