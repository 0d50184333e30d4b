// Prometheus metrics of a cluster member (`voxline serve --redis`): its role, the synthesis job
// queues it uses (sampled from Redis at scrape time, under a deadline), and per role what it
// holds: a gateway's owned sessions, a worker's jobs. Registered on the registry that already
// serves /metrics (a gateway's engine registry, or the worker's own).
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Redis } from './redis.js';
import type { SynthWorker } from './synthJobs.js';

export interface ClusterMetricsOptions {
  role: 'gateway' | 'worker' | 'all';
  redis: Redis;
  /** Providers whose job queues (`<prefix>:jobs:<provider>`) are sampled. */
  providers: string[];
  prefix?: string;
  /** A scrape waits at most this long for Redis (default 800 ms); past it the queue series are absent. */
  sampleTimeoutMs?: number;
  /** A gateway: the resumable sessions it owns now. */
  sessionsOwned?: () => number;
  /** A worker: its SynthWorker per provider. */
  workers?: SynthWorker[];
}

interface QueueSample {
  provider: string;
  /** Entries not yet delivered to any worker. */
  waiting: number;
  /** Delivered, not yet acknowledged (running, or held by a dead worker until reclaimed). */
  pending: number;
  /** Age of the oldest job still in the stream, on Redis's clock (0 when empty). */
  oldestSeconds: number;
}

/** One pipeline per scrape: TIME, then per provider XLEN, the oldest entry and the group's counts. */
async function sampleQueues(redis: Redis, prefix: string, providers: string[]): Promise<QueueSample[]> {
  const pipeline = redis.pipeline().time();
  for (const p of providers) {
    const key = `${prefix}:jobs:${p}`;
    pipeline.xlen(key).xrange(key, '-', '+', 'COUNT', 1).xinfo('GROUPS', key);
  }
  const replies = (await pipeline.exec()) ?? [];
  const [timeError, time] = replies[0] ?? [new Error('no reply'), null];
  if (timeError) throw timeError;
  const [seconds, micros] = time as [string, string];
  const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return providers.map((provider, i) => {
    const [lenReply, oldestReply, groupsReply] = replies.slice(1 + i * 3, 4 + i * 3);
    if (lenReply?.[0]) throw lenReply[0];
    const length = Number(lenReply?.[1] ?? 0);
    const oldest = (oldestReply?.[1] as Array<[string, string[]]> | undefined)?.[0];
    const oldestSeconds = oldest ? Math.max(0, (nowMs - Number(oldest[0].split('-')[0])) / 1000) : 0;
    // XINFO GROUPS fails on a stream not made yet (no worker, no job): nothing waits then.
    const groups = groupsReply?.[0] ? [] : ((groupsReply?.[1] as Array<Array<string | number | null>>) ?? []);
    const group = groups.find((g) => g[g.indexOf('name') + 1] === 'workers');
    const pending = group ? Number(group[group.indexOf('pending') + 1] ?? 0) : 0;
    // Workers delete acknowledged entries, so the stream holds exactly the waiting and pending
    // ones; XLEN − pending is the lag, also when XINFO's own lag is null (deleted entries).
    return { provider, waiting: Math.max(0, length - pending), pending, oldestSeconds };
  });
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

export function registerClusterMetrics(registry: Registry, options: ClusterMetricsOptions): void {
  const prefix = options.prefix ?? 'voxline';
  const timeoutMs = options.sampleTimeoutMs ?? 800;
  new Gauge({
    name: 'voxline_cluster_role',
    help: 'This process’s role in the cluster (1 for its role).',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      this.set({ role: options.role }, 1);
    },
  });

  // Sampled once per scrape and shared by the gauges below; a scrape never waits past the deadline.
  let sample: Promise<QueueSample[] | null> | null = null;
  const sampleOnce = () => {
    sample ??= withDeadline(sampleQueues(options.redis, prefix, options.providers), timeoutMs)
      .catch(() => null)
      .finally(() => setImmediate(() => (sample = null)));
    return sample;
  };
  new Gauge({
    name: 'voxline_cluster_redis_up',
    help: 'Whether Redis answered this scrape’s queue sample within its deadline (0: the queue series are absent).',
    registers: [registry],
    async collect() {
      this.set((await sampleOnce()) ? 1 : 0);
    },
  });
  const queueGauge = (name: string, help: string, read: (s: QueueSample) => number, labels: string[] = ['provider']) =>
    new Gauge({
      name,
      help,
      labelNames: labels,
      registers: [registry],
      async collect() {
        this.reset(); // stale values are never reported: no answer, no series
        for (const s of (await sampleOnce()) ?? []) this.set({ provider: s.provider }, read(s));
      },
    });
  queueGauge('voxline_synth_queue_depth', 'Synthesis jobs in the provider’s queue: not yet taken by a worker plus taken and not finished.', (s) => s.waiting + s.pending);
  queueGauge('voxline_synth_queue_pending', 'Synthesis jobs taken by a worker and not finished yet (running, or held by a dead worker until reclaimed).', (s) => s.pending);
  queueGauge('voxline_synth_queue_oldest_seconds', 'Age of the oldest unfinished synthesis job in the queue, in seconds (0 when empty).', (s) => s.oldestSeconds);

  if (options.sessionsOwned) {
    const owned = options.sessionsOwned;
    new Gauge({
      name: 'voxline_cluster_sessions_owned',
      help: 'Resumable sessions this gateway owns (recorded in the cluster’s session directory).',
      registers: [registry],
      collect() {
        this.set(owned());
      },
    });
  }

  const workers = options.workers ?? [];
  if (workers.length > 0) {
    new Gauge({
      name: 'voxline_worker_jobs_running',
      help: 'Synthesis jobs this worker runs now.',
      labelNames: ['provider'],
      registers: [registry],
      collect() {
        for (const w of workers) this.set({ provider: w.providerName }, w.runningJobs);
      },
    });
    // Counters fed from the workers' totals: each scrape adds what they grew by.
    const seen = new Map<string, number>();
    const grew = (key: string, now: number) => {
      const by = now - (seen.get(key) ?? 0);
      seen.set(key, now);
      return Math.max(0, by);
    };
    new Counter({
      name: 'voxline_worker_jobs_total',
      help: 'Synthesis jobs this worker finished, by status (done, failed, cancelled by the gateway).',
      labelNames: ['provider', 'status'],
      registers: [registry],
      collect() {
        for (const w of workers) {
          for (const status of ['done', 'failed', 'cancelled'] as const) {
            this.inc({ provider: w.providerName, status }, grew(`${w.providerName}/${status}`, w.counters[status]));
          }
        }
      },
    });
    new Counter({
      name: 'voxline_worker_jobs_reclaimed_total',
      help: 'Jobs of dead workers this worker ended (failed, provider_unavailable).',
      labelNames: ['provider'],
      registers: [registry],
      collect() {
        for (const w of workers) this.inc({ provider: w.providerName }, grew(`${w.providerName}/reclaimed`, w.counters.reclaimed));
      },
    });
  }
}
