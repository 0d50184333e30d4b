// `npm run bench:cluster [-- --quick] [--rounds N] [--only capacity,frames] [--from FILE]`: voxline as a
// cluster (`voxline serve --redis URL --role gateway|worker`) over a real redis-server, with
// the load generator, process helpers and capacity method of `npm run bench` (bench/run.ts).
//
// 1. Capacity per process. The capacity figure's load (real-time streams from the Groq
//    emulator, a client with a 200 ms jitter buffer; a load breaks on one underrun or one
//    stream that does not complete), through four set-ups, each its own processes and its
//    own key prefix on one redis-server: voxline in one process (the reference), 1 gateway +
//    2 workers, 2 gateways + 2 workers (the load generator spreads its clients over both
//    gateways' ports, no load balancer), 2 gateways + 1 worker. Interleaved like figure 3:
//    each load tried on every set-up still sustaining before the next. Per gateway: 2g2w over
//    1g2w; per worker: 2g2w over 2g1w; the price of Redis: 1g2w over one process.
// 2. Per-frame latency added by Redis. bench/contenders/stampProvider.ts writes the wall clock
//    into each block it yields; the client reads it back from each frame: provider yield →
//    client, in one process against worker → Redis → gateway → client, same load, interleaved.
//    A second stamp, written as the gateway's engine takes the block, splits that way in two
//    (provider → gateway, gateway → client); frames in a stream's first 500 ms (every session
//    starts at once: the start burst) are reported apart.
//
// Writes bench/results/cluster.json and bench/results/cluster.md (the tables docs/scaling.md
// quotes); `--from FILE` prints a run's tables again from its JSON. Every figure is a median
// across rounds; every ratio the median of per-round ratios.
import { execSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { connectRedis } from '../src/cluster/redis.js';
import { startRedis } from '../test/support/redisServer.js';
import { longText, shortText, spread, summarize, type ContenderName, type Spread, type Summary } from './common.js';
import { call, capacityRamp, compileContenders, cpuMs, quiet as quietUpstream, spawnChild, tag } from './harness.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    from: { type: 'string' },
  },
});
const quick = values.quick;
// --from FILE renders the tables again from a run's JSON, without measuring.
const from = values.from ? (JSON.parse(readFileSync(values.from, 'utf8')) as { rounds: Round[]; sizes: Sizes; date: string; command: string; machine: unknown; minutes: number; loadavg: number[] }) : null;
const rounds = Number(values.rounds ?? (quick ? 1 : 2));
const only = values.only ? new Set(values.only.split(',')) : null;
const runs = (figure: 'capacity' | 'frames') => (from ? Object.keys(from.rounds[0]?.[figure] ?? {}).length > 0 : !only || only.has(figure));
interface Sizes {
  capacity: number[];
  capacityBisections: number;
  warm: number;
  frames: number[];
  frameChars: number;
}
const quickSizes: Sizes = { capacity: [5], capacityBisections: 0, warm: 2, frames: [5], frameChars: 100 };
const fullSizes: Sizes = { capacity: [50, 100, 200, 400, 800], capacityBisections: 2, warm: 25, frames: [50, 150], frameChars: 400 };
const sizes: Sizes = from?.sizes ?? (quick ? quickSizes : fullSizes);
const log = (line: string) => process.stdout.write(`${line}\n`);
const rotate = <T>(list: T[], by: number) => list.map((_, i) => list[(i + by) % list.length]!);

/** A set-up: gateways and workers (none: voxline in one process), each a process. */
interface SetUp {
  name: string;
  gateways: number;
  workers: number;
}

interface Running {
  setUp: SetUp;
  ports: number[];
  gateways: ChildProcess[];
  workers: ChildProcess[];
}

interface CapacityRound {
  maxStreams: number;
  ramp: Array<{ sessions: number; underruns: number; completed: number }>;
  /** At the highest load sustained, per streamed audio-second. */
  perAudioSecond: { gatewayCpuMs: number; workerCpuMs: number; redisCpuMs: number; redisCommands: number; redisBytesIn: number; redisBytesOut: number; redisPeakClients: number };
}

interface FramesRound {
  [sessions: number]: { later: Summary; startBurst?: Summary; steady?: Summary; toGateway?: Summary; toClient?: Summary; first: Summary; ttfa: Summary; frames: number; unreadable: number; completed: number };
}

interface Round {
  capacity: Record<string, CapacityRound>;
  frames: Record<string, FramesRound>;
}

const capacitySetUps: SetUp[] = [
  { name: 'one process', gateways: 0, workers: 0 },
  { name: '1 gateway + 2 workers', gateways: 1, workers: 2 },
  { name: '2 gateways + 2 workers', gateways: 2, workers: 2 },
  { name: '2 gateways + 1 worker', gateways: 2, workers: 1 },
];
const frameSetUps: SetUp[] = [
  { name: 'one process', gateways: 0, workers: 0 },
  { name: '1 gateway + 1 worker', gateways: 1, workers: 1 },
];

/** Run every figure; resolves with the rounds. */
async function measure(): Promise<Round[]> {
  const serverScript = await compileContenders();
  const redis = await startRedis();
  const admin = await connectRedis(redis.url, { commandTimeoutMs: 5_000 });
  const emulator = await spawnChild('bench/emulatorProcess.ts', ['20']);
  const upstream = emulator.first.url as string;
  const loadgen = (await spawnChild('bench/loadgen.ts')).child;
  const quiet = () => quietUpstream(emulator.child);
  const children: ChildProcess[] = [];



  let prefixes = 0;
  async function launch(setUp: SetUp, provider: string): Promise<Running> {
    const server = async (args: string[]) => {
      const { child, first } = await spawnChild(serverScript, args, ['--expose-gc']);
      children.push(child);
      return { child, port: first.port as number };
    };
    if (setUp.gateways === 0) {
      const one = await server(['voxline', provider]);
      return { setUp, ports: [one.port], gateways: [one.child], workers: [] };
    }
    // One cluster per prefix on the shared redis-server: its workers take its jobs only.
    const prefix = `bench${++prefixes}`;
    const gateways = await Promise.all(Array.from({ length: setUp.gateways }, () => server(['voxline-gateway', provider, redis.url, prefix])));
    const workers = await Promise.all(Array.from({ length: setUp.workers }, () => server(['voxline-worker', provider, redis.url, prefix])));
    return { setUp, ports: gateways.map((g) => g.port), gateways: gateways.map((g) => g.child), workers: workers.map((w) => w.child) };
  }
  const stopAll = (set: Running[]) => {
    for (const r of set) for (const c of [...r.gateways, ...r.workers]) c.kill('SIGKILL');
  };

  /** Redis's own counters: CPU seconds, commands processed, bytes in and out. */
  async function redisCounters(): Promise<{ cpuMs: number; commands: number; bytesIn: number; bytesOut: number }> {
    const info = await admin.info();
    const field = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? Number.NaN);
    return {
      cpuMs: (field('used_cpu_sys') + field('used_cpu_user')) * 1000,
      commands: field('total_commands_processed'),
      bytesIn: field('total_net_input_bytes'),
      bytesOut: field('total_net_output_bytes'),
    };
  }
  const sumCpu = async (processes: ChildProcess[]) => (await Promise.all(processes.map(cpuMs))).reduce((a, b) => a + b, 0);

  const perRound: Round[] = [];

  async function capacityFigure(round: Round, order: SetUp[]): Promise<void> {
    const set = await Promise.all(order.map((s) => launch(s, upstream)));
    try {
      const byName = new Map(set.map((r) => [r.setUp.name, r]));
      const state = new Map(order.map((s) => [s.name, { maxStreams: 0, ramp: [] as CapacityRound['ramp'], perAudioSecond: null as CapacityRound['perAudioSecond'] | null }]));
      const contender = (r: Running): ContenderName => (r.setUp.gateways === 0 ? 'voxline' : 'voxline-gateway');
      // Fresh processes are cold (JIT, connections): an uncounted load first, as figure 3 does.
      for (const r of set) {
        await quiet();
        await call(loadgen, { kind: 'capacity', contender: contender(r), port: r.ports[0]!, ports: r.ports, sessions: sizes.warm, text: shortText, jitterMs: 200, tag: tag('w') });
      }
      await capacityRamp(
        order.map((s) => s.name),
        sizes.capacity,
        sizes.capacityBisections,
        async (name, sessions) => {
          const r = byName.get(name)!;
          const st = state.get(name)!;
          await quiet();
          const before = { gateways: await sumCpu(r.gateways), workers: await sumCpu(r.workers), redis: await redisCounters() };
          // Redis's connected clients, sampled through the load: the gateways hold one per job in flight.
          let peakClients = 0;
          const sampler = setInterval(() => {
            admin.info('clients').then((info) => (peakClients = Math.max(peakClients, Number(/^connected_clients:(\d+)/m.exec(info)?.[1] ?? 0))), () => {});
          }, 250);
          const result = await call<{ underruns: number; completed: number; audioSeconds: number }>(loadgen, {
            kind: 'capacity',
            contender: contender(r),
            port: r.ports[0]!,
            ports: r.ports,
            sessions,
            text: quick ? shortText : longText,
            jitterMs: 200,
            tag: tag('c'),
          });
          clearInterval(sampler);
          const after = { gateways: await sumCpu(r.gateways), workers: await sumCpu(r.workers), redis: await redisCounters() };
          st.ramp.push({ sessions, underruns: result.underruns, completed: result.completed });
          log(`${name}: capacity @${sessions}: ${result.underruns} underruns, ${result.completed} completed`);
          const held = result.underruns === 0 && result.completed >= sessions;
          if (held && sessions > st.maxStreams) {
            const per = (x: number) => x / result.audioSeconds;
            st.maxStreams = sessions;
            st.perAudioSecond = {
              gatewayCpuMs: per(after.gateways - before.gateways),
              workerCpuMs: per(after.workers - before.workers),
              redisCpuMs: per(after.redis.cpuMs - before.redis.cpuMs),
              redisCommands: per(after.redis.commands - before.redis.commands),
              redisBytesIn: per(after.redis.bytesIn - before.redis.bytesIn),
              redisBytesOut: per(after.redis.bytesOut - before.redis.bytesOut),
              redisPeakClients: peakClients,
            };
          }
          return held;
        },
      );
      const nan = { gatewayCpuMs: Number.NaN, workerCpuMs: Number.NaN, redisCpuMs: Number.NaN, redisCommands: Number.NaN, redisBytesIn: Number.NaN, redisBytesOut: Number.NaN, redisPeakClients: Number.NaN };
      for (const s of order) {
        const st = state.get(s.name)!;
        round.capacity[s.name] = { maxStreams: st.maxStreams, ramp: st.ramp, perAudioSecond: st.perAudioSecond ?? nan };
      }
    } finally {
      stopAll(set);
    }
  }

  async function framesFigure(round: Round, order: SetUp[]): Promise<void> {
    const set = await Promise.all(order.map((s) => launch(s, 'stamp')));
    try {
      const text = 'x'.repeat(sizes.frameChars);
      const contender = (r: Running): ContenderName => (r.setUp.gateways === 0 ? 'voxline' : 'voxline-gateway');
      for (const r of set) await call(loadgen, { kind: 'frames', contender: contender(r), port: r.ports[0]!, sessions: sizes.warm, text: 'x'.repeat(100), tag: tag('w') });
      for (const s of order) round.frames[s.name] = {};
      for (const sessions of sizes.frames) {
        for (const r of set) {
          const res = await call<{ first: number[]; later: number[]; startBurst: number[]; steady: number[]; ttfa: number[]; toGateway: number[]; toClient: number[]; unreadable: number; completed: number }>(loadgen, {
            kind: 'frames',
            contender: contender(r),
            port: r.ports[0]!,
            sessions,
            text,
            tag: tag('f'),
          });
          const f = { later: summarize(res.later), startBurst: summarize(res.startBurst), steady: summarize(res.steady), toGateway: summarize(res.toGateway), toClient: summarize(res.toClient), first: summarize(res.first), ttfa: summarize(res.ttfa), frames: res.later.length + res.first.length, unreadable: res.unreadable, completed: res.completed };
          round.frames[r.setUp.name]![sessions] = f;
          log(`${r.setUp.name}: frames @${sessions}: provider → client p50 ${f.later.p50.toFixed(2)} ms, p99 ${f.later.p99.toFixed(2)} ms (provider → gateway p50 ${f.toGateway.p50.toFixed(2)}, p99 ${f.toGateway.p99.toFixed(2)}; gateway → client p50 ${f.toClient.p50.toFixed(2)}, p99 ${f.toClient.p99.toFixed(2)}) over ${f.frames} frames (${f.unreadable} unreadable, ${f.completed} of ${sessions} completed); speak → first frame p50 ${f.ttfa.p50.toFixed(1)} ms`);
          await new Promise((res) => setTimeout(res, 300));
        }
      }
    } finally {
      stopAll(set);
    }
  }

  try {
    for (let r = 0; r < rounds; r++) {
      const round: Round = { capacity: {}, frames: {} };
      log(`round ${r + 1} of ${rounds}`);
      if (runs('frames')) await framesFigure(round, rotate(frameSetUps, r));
      if (runs('capacity')) await capacityFigure(round, rotate(capacitySetUps, r));
      perRound.push(round);
    }
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  loadgen.kill();
  emulator.child.kill();
  admin.disconnect();
  await redis.stop();
  return perRound;
}

const thisMachine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGB: os.totalmem() / 2 ** 30, node: process.version, os: `${os.type()} ${os.release()}` };
const started = Date.now();
const perRound = from ? from.rounds : await measure();

// Medians across rounds, and per-round ratios (median [min–max]).
const med = (xs: number[]) => spread(xs).median;
const ratio = (a: string, b: string, of: (rd: Round, s: string) => number): Spread => spread(perRound.map((rd) => of(rd, a) / of(rd, b)));
const capOf = (rd: Round, s: string) => rd.capacity[s]?.maxStreams ?? Number.NaN;
const ratios: Record<string, { label: string; ratio: Spread }> = {};
if (runs('capacity')) {
  ratios.perGateway = { label: 'streams, 2 gateways + 2 workers over 1 gateway + 2 workers', ratio: ratio('2 gateways + 2 workers', '1 gateway + 2 workers', capOf) };
  ratios.perWorker = { label: 'streams, 2 gateways + 2 workers over 2 gateways + 1 worker', ratio: ratio('2 gateways + 2 workers', '2 gateways + 1 worker', capOf) };
  const cpuOf = (rd: Round, s: string) => {
    const x = rd.capacity[s]?.perAudioSecond;
    return x ? x.gatewayCpuMs + x.workerCpuMs + x.redisCpuMs : Number.NaN;
  };
  ratios.cpuPrice = { label: 'CPU per streamed audio-second (every process and redis-server), 1 gateway + 2 workers over one process', ratio: ratio('1 gateway + 2 workers', 'one process', cpuOf) };
  ratios.redisPrice = { label: 'streams, 1 gateway + 2 workers over one process', ratio: ratio('1 gateway + 2 workers', 'one process', capOf) };
}
const frameAdded: Record<number, { p50: Spread; p99: Spread; steady99: Spread; ttfa50: Spread }> = {};
if (runs('frames')) {
  for (const n of sizes.frames) {
    const of = (rd: Round, s: string, f: (x: FramesRound[number]) => number) => f(rd.frames[s]![n]!);
    const diff = (f: (x: FramesRound[number]) => number) => spread(perRound.map((rd) => of(rd, '1 gateway + 1 worker', f) - of(rd, 'one process', f)));
    frameAdded[n] = { p50: diff((x) => x.later.p50), p99: diff((x) => x.later.p99), steady99: diff((x) => x.steady?.p99 ?? Number.NaN), ttfa50: diff((x) => x.ttfa.p50) };
  }
}

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const range = (s: Spread, d = 2) => `${f(s.median, d)} [${f(s.min, d)}–${f(s.max, d)}]`;
const machine = (from?.machine as typeof thisMachine | undefined) ?? thisMachine;
const command = from?.command ?? `npm run bench:cluster${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
const date = from?.date ?? new Date().toISOString();
const minutes = from?.minutes ?? (Date.now() - started) / 60_000;
const loadavg = from?.loadavg ?? os.loadavg();
const redisVersion = /v=(\S+)/.exec(execSync('redis-server --version').toString())?.[1] ?? '?';
const md: string[] = [
  `Generated by \`${command}\` on ${date.slice(0, 16).replace('T', ' ')} UTC in ${minutes.toFixed(1)} min: ${machine.cpus} × ${machine.cpu}, ${machine.memoryGB.toFixed(1)} GB, Node ${machine.node}, ${machine.os}, redis-server ${redisVersion}; ${perRound.length} round(s), load average ${loadavg.map((x) => x.toFixed(1)).join(' / ')} (1 / 5 / 15 min) at the end.`,
  '',
];
if (runs('capacity')) {
  const names = capacitySetUps.map((s) => s.name);
  md.push(
    '| set-up | real-time streams without underrun (median) | per round | CPU ms per streamed audio-second: gateways / workers / redis-server | Redis commands per audio-second | Redis bytes in / out per audio-second | Redis clients at peak | ramp (sessions: underruns, all rounds) |',
    '|---|---|---|---|---|---|---|---|',
  );
  for (const name of names) {
    const rs = perRound.map((rd) => rd.capacity[name]!);
    const m = (g: (x: CapacityRound['perAudioSecond']) => number) => med(rs.map((x) => g(x.perAudioSecond)));
    md.push(
      `| ${name} | ${med(rs.map((x) => x.maxStreams))} | ${rs.map((x) => x.maxStreams).join(', ')} | ${f(m((x) => x.gatewayCpuMs))} / ${f(m((x) => x.workerCpuMs))} / ${f(m((x) => x.redisCpuMs))} | ${f(m((x) => x.redisCommands), 0)} | ${f(m((x) => x.redisBytesIn), 0)} / ${f(m((x) => x.redisBytesOut), 0)} | ${f(m((x) => x.redisPeakClients), 0)} | ${rs.flatMap((x) => x.ramp.map((p) => `${p.sessions}: ${p.underruns}`)).join(', ')} |`,
    );
  }
  md.push(
    '',
    'Per process kind, at each set-up\'s highest load sustained: the streams one core would carry for that kind alone (1 000 ms over its CPU ms per audio-second, medians across rounds).',
    '',
    '| set-up | gateway streams per core | worker streams per core | redis-server streams per core (one thread) | all processes: CPU ms per audio-second |',
    '|---|---|---|---|---|',
  );
  for (const name of names) {
    const rs = perRound.map((rd) => rd.capacity[name]!.perAudioSecond);
    const m = (g: (x: CapacityRound['perAudioSecond']) => number) => med(rs.map(g));
    const perCore = (ms: number) => (ms > 0 ? f(1000 / ms, 0) : '–');
    // One process uses no Redis: what redis-server spent then is the other set-ups' idle traffic.
    const clustered = capacitySetUps.find((c) => c.name === name)!.gateways > 0;
    md.push(`| ${name} | ${perCore(m((x) => x.gatewayCpuMs))} | ${perCore(m((x) => x.workerCpuMs))} | ${clustered ? perCore(m((x) => x.redisCpuMs)) : '–'} | ${f(m((x) => x.gatewayCpuMs + x.workerCpuMs + x.redisCpuMs))} |`);
  }
  md.push('', '| ratio | median [min–max] across rounds |', '|---|---|');
  for (const r of Object.values(ratios)) md.push(`| ${r.label} | ${range(r.ratio)} |`);
  md.push('');
}
if (runs('frames')) {
  md.push('| set-up | sessions | provider yield → client frame p50 / p99 (ms) | in a stream\'s first 500 ms p50 / p99 | after it p50 / p99 | of which provider → gateway p50 / p99 | and gateway → client p50 / p99 | first frame of a stream p50 / p99 | speak → first frame p50 / p99 | frames measured |', '|---|---|---|---|---|---|---|---|---|---|');
  for (const s of frameSetUps) {
    for (const n of sizes.frames) {
      const rs = perRound.map((rd) => rd.frames[s.name]![n]!);
      const m = (g: (x: FramesRound[number]) => number) => f(med(rs.map(g)));
      md.push(`| ${s.name} | ${n} | ${m((x) => x.later.p50)} / ${m((x) => x.later.p99)} | ${m((x) => x.startBurst?.p50 ?? Number.NaN)} / ${m((x) => x.startBurst?.p99 ?? Number.NaN)} | ${m((x) => x.steady?.p50 ?? Number.NaN)} / ${m((x) => x.steady?.p99 ?? Number.NaN)} | ${m((x) => x.toGateway?.p50 ?? Number.NaN)} / ${m((x) => x.toGateway?.p99 ?? Number.NaN)} | ${m((x) => x.toClient?.p50 ?? Number.NaN)} / ${m((x) => x.toClient?.p99 ?? Number.NaN)} | ${m((x) => x.first.p50)} / ${m((x) => x.first.p99)} | ${m((x) => x.ttfa.p50)} / ${m((x) => x.ttfa.p99)} | ${rs.map((x) => x.frames).join(', ')} (${rs.map((x) => x.unreadable).reduce((a, b) => a + b, 0)} unreadable) |`);
    }
  }
  md.push('', '| sessions | added by Redis per frame, p50 (ms) | p99 | p99 after a stream\'s first 500 ms | added to speak → first frame, p50 |', '|---|---|---|---|---|');
  for (const n of sizes.frames) md.push(`| ${n} | ${range(frameAdded[n]!.p50)} | ${range(frameAdded[n]!.p99)} | ${range(frameAdded[n]!.steady99)} | ${range(frameAdded[n]!.ttfa50)} |`);
  md.push('');
}

const results = { date, command, machine, minutes, loadavg, quick, rounds: perRound, sizes, ratios, frameAdded };
mkdirSync('bench/results', { recursive: true });
if (!from) writeFileSync(`bench/results/cluster${quick ? '-quick' : ''}.json`, JSON.stringify(results, null, 2));
writeFileSync(`bench/results/cluster${quick ? '-quick' : ''}.md`, md.join('\n'));
log(md.join('\n'));

// Every figure must exist; --quick asserts only this (never how fast).
const missing: string[] = [];
if (runs('capacity')) for (const s of capacitySetUps) if (!perRound.every((rd) => (rd.capacity[s.name]?.ramp.length ?? 0) > 0)) missing.push(`capacity ${s.name}`);
if (runs('frames')) for (const n of sizes.frames) if (!Number.isFinite(frameAdded[n]?.p50.median)) missing.push(`frames @${n}`);
log(missing.length === 0 ? `bench:cluster: every figure produced (${quick ? 'quick' : 'full'} run)` : `bench:cluster: MISSING ${missing.join(', ')}`);
process.exit(missing.length === 0 ? 0 : 1);
