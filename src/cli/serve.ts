// `voxline serve`: the standalone server with the embedded voice and whatever providers the
// environment enables, pino logs, and a drain on SIGTERM/SIGINT (a second signal exits at once).
import { providersFromEnv, recognizersFromEnv } from '../config/providersFromEnv.js';
import { createListening } from '../listening/listening.js';
import { createChatModelFromEnv } from '../config/chatModelFromEnv.js';
import { createLogger, logEngine } from '../observability/engineLog.js';
import { createVoxlineServer, type VoxlineServer } from '../server/voxlineServer.js';
import type { ClusterConfig, ServeConfig } from './config.js';
import nodeCluster from 'node:cluster';
import { processCount, runPrimary } from './cluster.js';

const allRates = [24_000, 16_000, 22_050, 44_100, 48_000, 8_000];

export async function serve(config: ServeConfig): Promise<void> {
  // --processes N: this process becomes the node:cluster primary; each worker runs the rest of serve().
  const clustered = processCount(config.processes ?? 1) > 1;
  if (clustered && nodeCluster.isPrimary) return runPrimary(config);
  const log = createLogger(config.logLevel, undefined, clustered ? { worker: nodeCluster.worker?.id, pid: process.pid } : {});
  // A cluster worker drains when its primary says so, not on signals: a terminal's Ctrl-C
  // reaches the whole process group, and the primary relays it once to every worker.
  let drainAsked: ((signal: string) => void) | null = null;
  let drainPending: string | null = null;
  if (clustered) {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => {});
    process.on('message', (m: { type?: string; signal?: string }) => {
      if (m?.type !== 'voxline:drain') return;
      if (drainAsked) drainAsked(m.signal ?? 'SIGTERM');
      else drainPending = m.signal ?? 'SIGTERM';
    });
  }
  const setup = await providersFromEnv(process.env, {
    espeakWorkers: config.espeakWorkers,
    emulators: config.emulators,
    ...(config.providers ? { only: config.providers } : {}),
  });
  const limits = {
    ...(config.maxTextChars !== undefined ? { maxTextChars: config.maxTextChars } : {}),
    ...(config.maxQueued !== undefined ? { maxQueued: config.maxQueued } : {}),
  };
  // Listening (wire contract v2): PocketSphinx when Debian's packages are there, Groq Whisper with a key.
  // A VAD asked for and not installed stops the start here with its one line (cli.ts prints it).
  let listening: Awaited<ReturnType<typeof createListening>>;
  try {
    listening = await createListening({
      recognizers: recognizersFromEnv(process.env),
      ...(config.vad ? { vad: config.vad } : {}),
      ...(config.recognizerWorkers !== undefined ? { pocketsphinx: { size: config.recognizerWorkers } } : {}),
    });
  } catch (error) {
    await setup.close();
    throw error;
  }
  let cluster: Awaited<ReturnType<typeof joinCluster>> | null = null;
  try {
    cluster = config.cluster ? await joinCluster(config.cluster) : null;
  } catch (error) {
    await setup.close();
    throw error;
  }
  if (cluster && config.cluster?.role === 'worker') return work(config.cluster, cluster, setup, log, config);
  // A gateway synthesizes through the workers: each provider becomes a queue of jobs for them.
  const providers =
    cluster && config.cluster?.role === 'gateway'
      ? await (async () => {
          const { RedisJobProvider } = await import('../cluster/synthJobs.js');
          const { JobStreams } = await import('../cluster/jobStreams.js');
          // One set of reading connections for every provider's jobs.
          const streams = new JobStreams(cluster!.redis);
          return setup.providers.map((p) => new RedisJobProvider(cluster!.redis, p.name, p.voices, p.maxPieceChars, { streams }));
        })()
      : setup.providers;
  // The agent turn's language model: a configured endpoint, Groq or OpenAI by key, else the echo model.
  const chat = await createChatModelFromEnv(process.env, { emulators: config.emulators });
  let created: VoxlineServer;
  try {
    created = createVoxlineServer({
      providers,
      ...(config.defaultVoice ? { defaultVoice: config.defaultVoice } : {}),
      ...(config.sampleRate ? { sampleRates: [config.sampleRate, ...allRates.filter((r) => r !== config.sampleRate)] } : {}),
      ...(Object.keys(limits).length > 0 ? { limits } : {}),
      ...(config.apiKeys ? { apiKeys: config.apiKeys } : {}),
      ...(config.tls ? { tls: config.tls } : {}),
      inspect: config.inspect,
      metrics: config.metrics,
      ...(listening.options ? { listen: listening.options } : {}),
      agent: { model: chat.model },
      ...(config.maxSessionsPerKey !== undefined ? { abuse: { maxSessionsPerKey: config.maxSessionsPerKey } } : {}),
      ...(config.resumeWindowMs !== undefined ? { resume: config.resumeWindowMs === 0 ? false : { windowMs: config.resumeWindowMs } } : {}),
      ...(cluster && config.cluster ? { sharedSessionCap: cluster.sessionCap, sessionDirectory: cluster.sessionDirectory, sharedTextBudget: cluster.textBudget, drainMs: config.cluster.drainMs } : {}),
      // Sessions move between gateways only when their audio is in Redis (synthesis on workers).
      ...(cluster && config.cluster?.role === 'gateway' ? { sessionStore: cluster.sessionStore } : {}),
    });
  } catch (error) {
    await Promise.all([setup.close(), chat.close(), cluster?.close()]);
    throw error;
  }
  const voxline = created;
  logEngine(voxline.engine, log);
  if (cluster && config.cluster && voxline.metricsRegistry) {
    const { registerClusterMetrics } = await import('../cluster/clusterMetrics.js');
    const directory = cluster.sessionDirectory;
    registerClusterMetrics(voxline.metricsRegistry, {
      role: config.cluster.role,
      redis: cluster.redis,
      // Only a gateway's synthesis goes through the job queues; `all` synthesizes in process.
      providers: config.cluster.role === 'gateway' ? setup.providers.map((p) => p.name) : [],
      sessionsOwned: () => directory.ownedCount,
    });
  }
  // Signals are handled from before the server listens: a SIGTERM never finds it unprepared.
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) process.exit(130); // a second signal exits at once
    stopping = true;
    log.info({ event: 'draining', signal });
    // The drain of a cluster gateway's resumable sessions comes first, then the usual 10 s guard.
    const force = setTimeout(() => process.exit(1), 10_000 + (config.cluster?.drainMs ?? 0));
    force.unref();
    Promise.all([voxline.close().then(() => cluster?.close()), setup.close(), chat.close()]).then(
      () => {
        log.info({ event: 'stopped' });
        log.flush();
        process.exit(0);
      },
      () => process.exit(1),
    );
  };
  if (clustered) {
    drainAsked = onSignal;
    if (drainPending) return onSignal(drainPending);
  } else {
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  }
  const { url } = await voxline.listen(config.port, config.host);
  const wsUrl = `${url.replace(/^http/, 'ws')}/v1/voice`;
  // Resumes that land on another gateway are relayed here, to the address this gateway listens on.
  cluster?.advertise(wsUrl);
  log.info({
    event: 'listening',
    url,
    voiceEndpoint: wsUrl,
    providers: setup.summary,
    hearing: listening.summary,
    agent: chat.summary,
    inspect: config.inspect,
    auth: Boolean(config.apiKeys),
    ...(config.cluster ? { cluster: { role: config.cluster.role, leaseMs: config.cluster.leaseMs } } : {}),
  });
  // In a node:cluster the primary says it once, when every worker listens.
  if (!listening.options && (nodeCluster.worker?.id ?? 1) === 1) process.stderr.write(`voxline: ${listening.summary}\n`);
  if (!clustered) process.stdout.write(`voxline listening on ${url} (voice endpoint ${wsUrl})\n`);
  voxline.engine.ready().then(
    () => log.info({ event: 'ready', voices: voxline.engine.voices.length, defaultVoice: voxline.engine.defaultVoice }),
    (error: Error) => log.error({ event: 'not_ready', message: error.message }),
  );
}

/**
 * Join the cluster: ioredis is imported here, and only here, when --redis is given, so a single
 * process never loads it. A Redis that cannot be reached stops the start (one line, exit 1).
 */
async function joinCluster(cluster: ClusterConfig) {
  const { joinCluster: join } = await import('../cluster/joinCluster.js');
  return join({ redisUrl: cluster.redisUrl, leaseMs: cluster.leaseMs });
}

/**
 * `--role worker`: no sessions; this process takes the synthesis jobs of every provider it runs
 * from Redis Streams and writes their audio back. With a port it serves /metrics, /healthz and
 * /readyz (nothing else). SIGTERM stops taking jobs, lets the running ones finish (at most
 * --drain-ms, then they end failed), and exits 0.
 */
async function work(
  cluster: ClusterConfig,
  membership: Awaited<ReturnType<typeof joinCluster>>,
  setup: Awaited<ReturnType<typeof providersFromEnv>>,
  log: ReturnType<typeof createLogger>,
  config: ServeConfig,
): Promise<void> {
  const { SynthWorker } = await import('../cluster/synthJobs.js');
  await Promise.all(setup.providers.map((p) => p.ready()));
  const workers = setup.providers.map(
    // A network provider's job is mostly waiting on its HTTP stream (~5 ms of CPU per audio-second):
    // dozens fit a core. The embedded voice runs one job per pool process.
    (p) => new SynthWorker(membership.redis, p, { claimIdleMs: cluster.claimIdleMs, concurrency: p.poolStats?.().size ?? cluster.workerConcurrency ?? 64 }),
  );
  let stopping = false;
  const http = cluster.workerPort === undefined ? null : await workerHttp(config, membership, workers, () => stopping);
  await Promise.all(workers.map((w) => w.start()));
  const totals = () => {
    const sum = { running: 0, done: 0, failed: 0, cancelled: 0, reclaimed: 0 };
    for (const w of workers) {
      sum.running += w.runningJobs;
      for (const k of ['done', 'failed', 'cancelled', 'reclaimed'] as const) sum[k] += w.counters[k];
    }
    return Object.entries(sum)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
  };
  const onSignal = (signal: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    log.info({ event: 'draining', signal });
    const force = setTimeout(() => process.exit(1), cluster.drainMs + 5_000);
    force.unref();
    // First no new jobs (a job queued from now on goes to another worker), then the running ones finish.
    Promise.all(workers.map((w) => w.stopTaking()))
      .then(() => {
        process.stdout.write(`voxline worker draining: ${totals()}\n`);
        return Promise.all(workers.map((w) => w.stop(cluster.drainMs)));
      })
      .then(() => {
        process.stdout.write(`voxline worker stopped: ${totals()}\n`);
        return Promise.all([setup.close(), membership.close(), http?.close()]);
      })
      .then(
        () => {
          log.info({ event: 'stopped' });
          log.flush();
          process.exit(0);
        },
        () => process.exit(1),
      );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  log.info({ event: 'worker', providers: setup.summary, claimIdleMs: cluster.claimIdleMs, ...(http ? { url: http.url } : {}) });
  process.stdout.write(`voxline worker ready (${setup.providers.map((p) => p.name).join(', ')})${http ? ` on ${http.url}` : ''}\n`);
}

/** A worker's HTTP: GET /metrics, /healthz, /readyz (503 while draining); anything else 404. */
async function workerHttp(
  config: ServeConfig,
  membership: Awaited<ReturnType<typeof joinCluster>>,
  workers: Array<import('../cluster/synthJobs.js').SynthWorker>,
  draining: () => boolean,
): Promise<{ url: string; close(): Promise<void> }> {
  const { createServer } = await import('node:http');
  const { Registry, collectDefaultMetrics } = await import('prom-client');
  const { registerClusterMetrics } = await import('../cluster/clusterMetrics.js');
  const registry = new Registry();
  if (config.metrics) {
    collectDefaultMetrics({ register: registry, prefix: 'voxline_' });
    registerClusterMetrics(registry, { role: 'worker', redis: membership.redis, providers: workers.map((w) => w.providerName), workers });
  }
  const reply = (res: import('node:http').ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  };
  const json = 'application/json';
  const server = createServer((req, res) => {
    // Requests carry no body here: whatever a client sends is not read, and its socket closes after the reply.
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 404, json, '{"error":{"code":"not_found","message":"no such route"}}');
    if (path === '/healthz') return reply(res, 200, json, '{"status":"ok"}');
    if (path === '/readyz') {
      const ready = !draining();
      return reply(res, ready ? 200 : 503, json, JSON.stringify({ ready, draining: !ready, running: workers.reduce((n, w) => n + w.runningJobs, 0) }));
    }
    if (path === '/metrics' && config.metrics) {
      registry.metrics().then(
        (text) => reply(res, 200, registry.contentType, text),
        () => reply(res, 500, json, '{"error":{"code":"internal","message":"metrics failed"}}'),
      );
      return;
    }
    reply(res, 404, json, '{"error":{"code":"not_found","message":"no such route"}}');
  });
  // Bounded: small headers, a slow or idle client is cut.
  server.maxHeadersCount = 50;
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 1_000;
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.cluster?.workerPort ?? 0, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as import('node:net').AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
