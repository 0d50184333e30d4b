// One contender in its own process (so its memory and CPU can be measured alone):
// raw-ws, socket.io, voxline (upstream: the emulator) or voxline-espeak (embedded voice);
// voxline-cluster is voxline as `voxline serve --processes 2` runs it: this process is the
// cluster's primary and two workers, each a whole server, share its port; `stats` and `cpu`
// answer for the three processes together.
// Talks to the orchestrator over IPC: `ready` with its port, then `stats` (or just `cpu`) on request.
// tsx turns on source-mapped stack traces; production (`node dist/...`) runs without them, and
// every aborted fetch builds an Error, so leaving them on would bill tsx's cost to the contenders.
process.setSourceMapsEnabled(false);
import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { groqProvider } from '../src/providers/groq/groqProvider.js';
import { EspeakProvider } from '../src/providers/espeak/espeakProvider.js';
import type { TtsProvider } from '../src/providers/types.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
import { attachRawRelay, attachSocketIoRelay } from './contenders/relays.js';
import { restamped, StampProvider } from './contenders/stampProvider.js';
import type { ContenderName } from './common.js';

// voxline-gateway and voxline-worker are the two roles of `voxline serve --redis URL --role …`
// (bench/cluster.ts): a gateway whose provider queues each piece as a job on Redis, and a
// synthesis worker with no HTTP at all, taking the jobs and calling the upstream. Both take the
// Redis URL and a key prefix (one cluster per prefix on one redis-server) after the upstream.
// An upstream of `stamp` is bench/contenders/stampProvider.ts instead of the Groq emulator.
const [contender, upstream, redisUrl, prefix] = process.argv.slice(2) as [ContenderName, string, string?, string?];
const upstreamProvider = (): TtsProvider => (upstream === 'stamp' ? new StampProvider() : groqProvider({ apiKey: 'bench', baseURL: upstream }));
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
let port: number;
let workers: Worker[] = [];

if (contender === 'voxline-cluster' && cluster.isPrimary) {
  workers = [cluster.fork(), cluster.fork()];
  const ports = await Promise.all(workers.map((w) => new Promise<number>((resolve) => w.once('message', (m: { port: number }) => resolve(m.port)))));
  port = ports[0]!;
} else if (contender === 'voxline-worker') {
  // As `voxline serve --role worker` runs it (src/cli/serve.ts), with a concurrency that does
  // not bound the figure: the CLI's is the provider's pool size, or 4 for a network provider.
  const { joinCluster } = await import('../src/cluster/joinCluster.js');
  const { SynthWorker } = await import('../src/cluster/synthJobs.js');
  const membership = await joinCluster({ redisUrl: redisUrl!, ...(prefix ? { prefix } : {}) });
  const worker = new SynthWorker(membership.redis, upstreamProvider(), { concurrency: 100_000, ...(prefix ? { prefix } : {}) });
  await worker.start();
  port = 0;
} else if (contender === 'voxline' || contender === 'voxline-espeak' || contender === 'voxline-cluster' || contender === 'voxline-gateway') {
  let providers: TtsProvider[] = contender !== 'voxline-espeak' ? [upstreamProvider()] : [new EspeakProvider({ size: 2 })];
  let shared = {};
  let advertise = (_url: string) => {};
  if (contender === 'voxline-gateway') {
    // As `voxline serve --role gateway` runs it: every shared piece of state through Redis.
    const { joinCluster } = await import('../src/cluster/joinCluster.js');
    const { RedisJobProvider } = await import('../src/cluster/synthJobs.js');
    const membership = await joinCluster({ redisUrl: redisUrl!, textCharsPerMinute: 1e9, ...(prefix ? { prefix } : {}) });
    providers = providers.map((p) => new RedisJobProvider(membership.redis, p.name, p.voices, p.maxPieceChars, prefix ? { prefix } : {}));
    shared = { sharedSessionCap: membership.sessionCap, sessionDirectory: membership.sessionDirectory, sharedTextBudget: membership.textBudget };
    advertise = membership.advertise;
  }
  // The per-frame latency figure: a second stamp as the gateway's engine takes each block.
  if (upstream === 'stamp') providers = providers.map(restamped);
  const server = createVoxlineServer({
    providers,
    ...shared,
    metrics: false,
    maxConnectionsPerIp: 100_000,
    abuse: { messagesPerSecond: 1_000, messageBurst: 1_000, maxSessionsPerKey: 100_000 },
    limits: { handshakeTimeoutMs: 120_000 },
    heartbeatIntervalMs: 60_000,
  });
  await server.engine.ready();
  port = (await server.listen(0, '127.0.0.1')).port;
  advertise(`ws://127.0.0.1:${port}/v1/voice`);
} else {
  const server = createServer();
  if (contender === 'raw-ws') attachRawRelay(server, upstream);
  else attachSocketIoRelay(server, upstream);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
}

const cpuMs = () => {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
};

/** The cluster's primary: ask every worker, add their answers to this process's own. */
async function gather(type: 'cpu' | 'stats'): Promise<Record<string, number>> {
  const answers = await Promise.all(
    workers.map((w) => {
      const answer = new Promise<Record<string, number>>((resolve) => {
        const on = (m: { type: string } & Record<string, number>) => {
          if (m.type !== type) return;
          w.off('message', on);
          resolve(m);
        };
        w.on('message', on);
      });
      w.send({ type });
      return answer;
    }),
  );
  const own = { cpuMs: cpuMs(), ...(type === 'stats' ? { rss: process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed, handles: 0 } : {}) } as Record<string, number>;
  for (const a of answers) for (const k of Object.keys(own)) own[k]! += a[k] ?? 0;
  return own;
}

process.on('message', async (message: { type: string }) => {
  if (workers.length > 0) {
    if (message.type === 'exit') {
      for (const w of workers) w.process.kill('SIGKILL');
      process.exit(0);
    }
    if (message.type === 'cpu' || message.type === 'stats') process.send!({ type: message.type, ...(await gather(message.type)) });
    return;
  }
  if (message.type === 'exit') process.exit(0); // lets --cpu-prof write its profile
  if (message.type === 'cpu') {
    // CPU alone, without the collections `stats` forces first, for the CPU spent on one scenario.
    process.send!({ type: 'cpu', cpuMs: cpuMs() });
    return;
  }
  if (message.type !== 'stats') return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 30));
  }
  const m = process.memoryUsage();
  process.send!({ type: 'stats', rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, cpuMs: cpuMs(), handles: process.getActiveResourcesInfo().length });
});
process.send!({ type: 'ready', port });
