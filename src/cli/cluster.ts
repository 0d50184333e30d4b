// `voxline serve --processes N`: one machine, every core. The primary process serves nothing
// itself: it forks N workers (node:cluster), each a whole voxline server (engine, providers,
// listening, agent) listening on the same port; the cluster hands each new connection to a
// worker in turn. A worker that dies is replaced (after a pause if it died young, and the
// primary gives up, exit 1, after 5 young deaths in a row). SIGTERM or SIGINT to the primary
// drains every worker (each one as a single `voxline serve` does: its sessions end
// `shutting_down`, sockets close 1001) and exits 0 once all have, 1 if one failed to; a second
// signal kills them at once (exit 130). Workers ignore signals and drain on the primary's word,
// so a Ctrl-C that reaches the whole process group drains each worker once.
// Limits kept in memory (per-key session caps, rate limits, connections per IP) are per
// worker in this mode: docs/operations.md says what that means.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { createLogger } from '../observability/engineLog.js';
import type { ServeConfig } from './config.js';

/** Restart pauses: a worker that dies within `youngMs` of its start waits `pauseMs` to be replaced. */
const youngMs = 5_000;
const pauseMs = 1_000;
const maxYoungDeaths = 5;

export const processCount = (n: number | 'auto'): number => (n === 'auto' ? availableParallelism() : n);

/** Run the primary: fork, restart, drain. Resolves when every worker is listening. */
export async function runPrimary(config: ServeConfig): Promise<void> {
  const log = createLogger(config.logLevel, undefined, { role: 'primary', pid: process.pid });
  const count = processCount(config.processes ?? 1);
  let stopping = false;
  let youngDeaths = 0;
  let failedExit = false;
  /** Live workers by id, with their start time. */
  const startedAt = new Map<number, number>();
  const fork = () => {
    const worker = cluster.fork();
    startedAt.set(worker.id, Date.now());
    return worker;
  };
  const live = () => [...startedAt.keys()].flatMap((id) => cluster.workers?.[id] ?? []);
  const listening = new Promise<string>((resolve, reject) => {
    let up = 0;
    cluster.on('listening', (_worker: Worker, address) => {
      up++;
      if (up === count) resolve(`http://${address.address ?? config.host}:${address.port}`);
    });
    cluster.on('exit', (worker, code, signal) => {
      const young = Date.now() - (startedAt.get(worker.id) ?? 0) < youngMs;
      startedAt.delete(worker.id);
      if (stopping) {
        if (code !== 0) failedExit = true;
        log.info({ event: 'worker.stopped', worker: worker.id, code, signal });
        return;
      }
      // Died before every worker was listening: a start-up failure (port in use, bad config) that a restart would repeat.
      if (up < count) return reject(new Error(`a worker exited (${signal ?? code}) before listening`));
      log.error({ event: 'worker.exit', worker: worker.id, pid: worker.process.pid, code, signal });
      youngDeaths = young ? youngDeaths + 1 : 0;
      if (youngDeaths >= maxYoungDeaths) {
        log.fatal({ event: 'workers.crash_loop', deaths: youngDeaths });
        log.flush();
        process.exit(1);
      }
      setTimeout(() => stopping || fork(), young ? pauseMs : 0).unref();
    });
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal: every worker exits at once.
      for (const w of live()) w.process.kill('SIGKILL');
      process.exit(130);
    }
    stopping = true;
    log.info({ event: 'draining', signal, workers: startedAt.size });
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    for (const w of live()) w.send({ type: 'voxline:drain', signal });
    const done = () => {
      if (startedAt.size > 0) return;
      log.info({ event: 'stopped' });
      log.flush();
      process.exit(failedExit ? 1 : 0);
    };
    cluster.on('exit', done);
    done();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  for (let i = 0; i < count; i++) fork();
  const url = await listening;
  const wsUrl = `${url.replace(/^http/, 'ws')}/v1/voice`;
  log.info({ event: 'listening', url, processes: count });
  process.stdout.write(`voxline listening on ${url} (voice endpoint ${wsUrl}) with ${count} processes\n`);
}
