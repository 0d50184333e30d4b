// A gateway process of a test cluster: the real server and cluster membership (as `voxline serve
// --redis` makes them), with the deterministic tone voice so runs can be compared sample for
// sample. Configured by environment: REDIS_URL, LEASE_MS, RESUME_WINDOW_MS, TONE_PAUSE_MS, DRAIN_MS,
// TEXT_PER_MINUTE, and SYNTH=workers: synthesis on worker processes (test/support/toneWorker.ts)
// through Redis, so this gateway's sessions can move to another when it dies.
// SIGTERM drains (session.goaway, 1012, resumes relayed back here) and exits 0.
import { joinCluster } from '../../src/cluster/joinCluster.js';
import { RedisJobProvider } from '../../src/cluster/synthJobs.js';
import { createVoxlineServer } from '../../src/server/voxlineServer.js';
import { ToneProvider } from './toneProvider.js';

const textCharsPerMinute = Number(process.env.TEXT_PER_MINUTE ?? 60_000);
const cluster = await joinCluster({ redisUrl: process.env.REDIS_URL!, leaseMs: Number(process.env.LEASE_MS ?? 2_000), textCharsPerMinute });
const tone = new ToneProvider({ pauseMs: Number(process.env.TONE_PAUSE_MS ?? 20) });
const onWorkers = process.env.SYNTH === 'workers';
const server = createVoxlineServer({
  providers: [onWorkers ? new RedisJobProvider(cluster.redis, tone.name, tone.voices, tone.maxPieceChars) : tone],
  ...(onWorkers ? { sessionStore: cluster.sessionStore } : {}),
  resume: { windowMs: Number(process.env.RESUME_WINDOW_MS ?? 5_000) },
  sharedSessionCap: cluster.sessionCap,
  sessionDirectory: cluster.sessionDirectory,
  sharedTextBudget: cluster.textBudget,
  heartbeatIntervalMs: 0,
  abuse: { textCharsPerMinute },
  drainMs: Number(process.env.DRAIN_MS ?? 5_000),
});
const { url } = await server.listen(0, '127.0.0.1');
const voice = `${url.replace('http', 'ws')}/v1/voice`;
cluster.advertise(voice);
process.on('SIGTERM', () => {
  void server
    .close()
    .then(() => cluster.close())
    .then(() => process.exit(0));
});
process.stdout.write(`gateway listening on ${voice}\n`);
