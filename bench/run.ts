// `npm run bench [-- --quick]`: voxline against a bare `ws` relay (the floor) and a
// socket.io relay, in one run, fed by the same Groq emulator, driven by a load generator in
// its own process. Writes bench/results/latest.json, docs/benchmarks.md (tables) and
// docs/images/bench-*.svg (charts). --quick (CI) runs tiny counts in well under a minute and
// asserts that every figure was produced, never how fast.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { GroqEmulatorOptions } from '../src/emulators/groqEmulator.js';
import type { ChatFirstTokenFigure } from './chatFirstToken.js';
import type { VoiceToVoiceFigure } from './voiceToVoice.js';
import { barChart, lineChart } from './chart.js';
import { renderReport, type BenchResults } from './report.js';
import { longText, shortText, slope, spread, summarize, type ContenderName, type Spread, type Summary } from './common.js';
import { ask, call, capacityRamp, compileContenders, cpuMs, nextMessage, quiet as quietUpstream, spawnChild, stats, tag } from './harness.js';

interface ListeningPass {
  cpuMsPerAudioSecond: number;
  wallMsPerAudioSecond: number;
  wer: number;
}

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: 'docs/benchmarks.md' },
    // While working on one figure: `--only ttfa,stop` runs just those and writes bench/results/only.json.
    only: { type: 'string' },
    contenders: { type: 'string' },
    // Rounds of figures 1–4 (default 3; 1 with --quick): each figure is the median across rounds.
    rounds: { type: 'string' },
  },
});
const only = values.only ? new Set(values.only.split(',')) : null;
const runs = (figure: 'ttfa' | 'stop' | 'capacity' | 'memory' | 'espeak' | 'leak' | 'listening' | 'chat' | 'voice') => !only || only.has(figure);
const quick = values.quick;
const sizes = quick
  ? { ttfa: [1, 10], ttfaRounds: [3, 2], stop: [10], capacity: [5], capacityBisections: 0, idle: 100, streaming: 10, espeakSeq: 8, espeakStreams: 2, listenSentences: 3, leakBatches: 3, leakBatch: 100, heapWarm: 100, heapMeasured: 200, chatRounds: 20, voiceTurns: 2, voiceConversations: 1 }
  : { ttfa: [1, 100, 1000], ttfaRounds: [30, 3, 1], stop: [100, 1000], capacity: [100, 200, 400, 800, 1600], capacityBisections: 2, idle: 10_000, streaming: 1000, espeakSeq: 60, espeakStreams: 8, listenSentences: 12, leakBatches: 10, leakBatch: 1000, heapWarm: 2000, heapMeasured: 5000, chatRounds: 300, voiceTurns: 10, voiceConversations: 5 };
const firstByteDelayMs = 20;
// voxline-cluster (`voxline serve --processes 2`) runs in the capacity figure only.
const capacityContenders = (values.contenders?.split(',') ?? ['raw-ws', 'socket.io', 'voxline', 'voxline-cluster']) as ContenderName[];
const contenders = capacityContenders.filter((c) => c !== 'voxline-cluster');
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const replyText = `${longText} ${longText} ${longText}`;
// The contenders run as compiled JavaScript under plain node, as in production: tsx's loader
// alone adds about 45 MB of RSS to a process, which would blur the memory figures.
const serverScript = await compileContenders();

// The shared upstream, in its own process.
const emulator = await spawnChild('bench/emulatorProcess.ts', [String(firstByteDelayMs)]);
const upstream = emulator.first.url as string;
const upstreamPort = Number(new URL(upstream).port);
const released = new Map<string, number>();
emulator.child.on('message', (m: { type: string; marker?: string; at?: number }) => {
  if (m.type === 'released') released.set(m.marker!, m.at!);
});
const configureEmulator = (options: Partial<GroqEmulatorOptions>) => ask(emulator.child, { type: 'configure', options } as { type: string }, 'configured');

const loadgen = (await spawnChild('bench/loadgen.ts')).child;
const results: Record<string, unknown> = {};
const report = {
  /** Added time to first audio: the contender's p50/p99 minus the direct baseline's, measured just before it. */
  ttfa: {} as Record<string, Record<number, Summary>>,
  ttfaBaseline: {} as Record<string, Record<number, Summary>>,
  /** The contender's CPU (ms) per utterance during that scenario: start, first audio, stop, end. */
  ttfaCpuMs: {} as Record<string, Record<number, number>>,
  stop: {} as Record<string, Record<number, { toEnd: Summary; toRelease: Summary }>>,
  capacity: {} as Record<string, { maxStreams: number; cpuMsPerAudioSecond: number; ramp: Array<{ sessions: number; underruns: number }> }>,
  memory: {} as Record<string, { idleKBPerSession: number; idleHeapKBPerSession: number; streamingKBPerSession: number; streamingHeapKBPerSession?: number; replyKBPerSession?: number; idle: number; streaming: number; idleRssMB?: number; afterLoadRssMB?: number }>,
  espeak: null as null | { ttfa: Summary; realtimeFactor: number; streamsPerCore: number },
  /** PocketSphinx: CPU ms of its worker per listened audio-second, with a grammar and with the general model. */
  listening: null as null | { sentences: number; audioSeconds: number; startMs: number; grammar: ListeningPass; general: ListeningPass },
  leak: null as null | { heapBytesPer1000: number; handlesPer1000: number; samples: Array<[number, number]> },
  heapDiff: null as null | { warm: number; measured: number; heapBytes: number; appObjects: number; appBytes: number; engineBytes: number },
  /** The agent turn's chat adapter: time to first token over the chat emulator's, sequential. */
  chat: null as null | ChatFirstTokenFigure,
  voiceToVoice: null as null | VoiceToVoiceFigure,
};

async function withServer<T>(contender: ContenderName, fn: (port: number, server: ChildProcess) => Promise<T>): Promise<T> {
  const { child, first } = await spawnChild(serverScript, [contender, upstream], ['--expose-gc']);
  try {
    return await fn(first.port as number, child);
  } finally {
    child.kill('SIGKILL');
  }
}

/** Let the previous scenario's streams drain (the upstream has nothing open) before measuring the next. */
const quiet = () => quietUpstream(emulator.child);
const log = (line: string) => process.stdout.write(`${line}\n`);

// Figures 1–4 are measured in rounds, the contenders interleaved within each round (A B C,
// then B C A, …), so a neighbour's load that comes and goes hits every contender alike; each
// figure is reported as its median across rounds, and each ratio to raw-ws as the median of
// the per-round ratios with their min–max.
interface TtfaRound { added50: number; added99: number; base50: number; base99: number; cpuMs: number }
interface CapacityRound { maxStreams: number; cpuMsPerAudioSecond: number; ramp: Array<{ sessions: number; underruns: number }>; afterLoadRssMB: number }
interface MemoryRound { replyKBPerSession: number; idleKBPerSession: number; idleHeapKBPerSession: number; streamingKBPerSession: number; streamingHeapKBPerSession: number; idleRssMB: number }
interface Round {
  order: ContenderName[];
  ttfa: Record<string, Record<number, TtfaRound>>;
  stop: Record<string, Record<number, { toEnd: Summary; toRelease: Summary }>>;
  capacity: Record<string, CapacityRound>;
  memory: Record<string, MemoryRound>;
}
const perRound: Round[] = [];
const rotate = <T>(list: T[], by: number) => list.map((_, i) => list[(i + by) % list.length]!);

/** 1 + 2 for one contender in a fresh server: time to first audio (against the direct baseline just before), then STOP. */
async function latencyFigures(contender: ContenderName, round: Round): Promise<void> {
  round.ttfa[contender] = {};
  round.stop[contender] = {};
  await withServer(contender, async (port, server) => {
    for (const [k, sessions] of runs('ttfa') ? sizes.ttfa.entries() : []) {
      const ttfaRounds = sizes.ttfaRounds[k]!;
      await quiet();
      const base = await call<{ ttfa: number[] }>(loadgen, { kind: 'ttfa', contender: 'direct', port: upstreamPort, sessions, rounds: ttfaRounds, text: shortText, tag: tag('b') });
      await quiet();
      const warm = nextMessage(loadgen, 'warm');
      const measured = call<{ ttfa: number[] }>(loadgen, { kind: 'ttfa', contender, port, sessions, rounds: ttfaRounds, text: shortText, tag: tag('t'), holdAfterWarmup: true });
      await warm;
      // The server's CPU over the counted rounds: one utterance per session per round.
      const cpuBefore = await cpuMs(server);
      loadgen.send({ type: 'go' });
      const r = await measured;
      const cpu = ((await cpuMs(server)) - cpuBefore) / (sessions * ttfaRounds);
      const baseline = summarize(base.ttfa);
      const own = summarize(r.ttfa);
      const t = { added50: own.p50 - baseline.p50, added99: own.p99 - baseline.p99, base50: baseline.p50, base99: baseline.p99, cpuMs: cpu };
      round.ttfa[contender]![sessions] = t;
      log(`${contender}: ttfa @${sessions} added p50 ${t.added50.toFixed(2)} ms, p99 ${t.added99.toFixed(2)} ms (direct p50 ${t.base50.toFixed(2)} ms), ${cpu.toFixed(2)} CPU ms per utterance`);
    }
    for (const sessions of runs('stop') ? sizes.stop : []) {
      await quiet();
      const r = await call<{ stopToEnd: number[]; stopAt: Record<string, number> }>(loadgen, { kind: 'stop', contender, port, sessions, text: longText, tag: tag('s') });
      await new Promise((res) => setTimeout(res, 300));
      const toRelease = Object.entries(r.stopAt).flatMap(([marker, at]) => (released.has(marker) ? [released.get(marker)! - at] : []));
      round.stop[contender]![sessions] = { toEnd: summarize(r.stopToEnd.filter(Number.isFinite)), toRelease: summarize(toRelease) };
      log(`${contender}: stop @${sessions} end p99 ${round.stop[contender]![sessions]!.toEnd.p99.toFixed(2)} ms, release p99 ${round.stop[contender]![sessions]!.toRelease.p99.toFixed(2)} ms`);
    }
  });
}

/**
 * 3. Capacity, every contender's server up at once (fresh for the round) and the loads
 * interleaved: each load of the ramp is tried on every contender still sustaining before the
 * next load, then each bisection step on every contender in turn. A client with a 200 ms
 * jitter buffer underruns, or a stream does not complete: the load broke.
 */
async function capacityFigure(round: Round, order: ContenderName[]): Promise<void> {
  const servers = await Promise.all(order.map(async (c) => ({ c, ...(await spawnChild(serverScript, [c, upstream], ['--expose-gc'])) })));
  try {
    const state = new Map(order.map((c) => [c, { maxStreams: 0, cpuMsPerAudioSecond: Number.NaN, ramp: [] as Array<{ sessions: number; underruns: number }> }]));
    const sustains = async (c: ContenderName, sessions: number): Promise<boolean> => {
      const { child, first } = servers.find((s) => s.c === c)!;
      const st = state.get(c)!;
      await quiet();
      const before = await stats(child);
      const r = await call<{ underruns: number; completed: number; audioSeconds: number }>(loadgen, { kind: 'capacity', contender: c, port: first.port as number, sessions, text: quick ? shortText : longText, jitterMs: 200, tag: tag('c') });
      const after = await stats(child);
      st.ramp.push({ sessions, underruns: r.underruns });
      log(`${c}: capacity @${sessions}: ${r.underruns} underruns, ${r.completed} completed`);
      if (r.underruns > 0 || r.completed < sessions) return false;
      if (sessions > st.maxStreams) {
        st.maxStreams = sessions;
        st.cpuMsPerAudioSecond = (after.cpuMs - before.cpuMs) / r.audioSeconds;
      }
      return true;
    };
    // Fresh processes are cold (JIT, the upstream connection pool): a first load would break on
    // that alone. Each server first streams an uncounted load, as it did when this figure ran
    // in the process that had just served figures 1 and 2.
    for (const { c, first } of servers) {
      await quiet();
      await call(loadgen, { kind: 'capacity', contender: c, port: first.port as number, sessions: quick ? 2 : 50, text: shortText, jitterMs: 200, tag: tag('w') });
    }
    await capacityRamp(order, sizes.capacity, sizes.capacityBisections, sustains);
    for (const { c, child } of servers) {
      const st = state.get(c)!;
      round.capacity[c] = { maxStreams: st.maxStreams, cpuMsPerAudioSecond: st.cpuMsPerAudioSecond, ramp: st.ramp, afterLoadRssMB: (await stats(child)).rss / 2 ** 20 };
    }
  } finally {
    for (const { child } of servers) child.kill('SIGKILL');
  }
}

/** 4. Memory per session, in a fresh process: idle, then streaming. */
async function memoryFigure(contender: ContenderName, round: Round): Promise<void> {
  await withServer(contender, async (port, server) => {
    await quiet();
    const empty = await stats(server);
    await call(loadgen, { kind: 'open', contender, port, sessions: sizes.idle, tag: tag('i') });
    const idle = await stats(server);
    await call(loadgen, { kind: 'closeAll' });
    await new Promise((res) => setTimeout(res, 500));
    const empty2 = await stats(server);
    await call(loadgen, { kind: 'open', contender, port, sessions: sizes.streaming, speakText: longText, tag: tag('m') });
    const streaming = await stats(server);
    if (process.env.BENCH_MEMORY_DETAIL) log(`${contender}: streaming per session: external ${((streaming.external - empty2.external) / 1024 / sizes.streaming).toFixed(1)} KB, arrayBuffers ${((streaming.arrayBuffers - empty2.arrayBuffers) / 1024 / sizes.streaming).toFixed(1)} KB, heap ${((streaming.heapUsed - empty2.heapUsed) / 1024 / sizes.streaming).toFixed(1)} KB, rss ${((streaming.rss - empty2.rss) / 1024 / sizes.streaming).toFixed(1)} KB`);
    await call(loadgen, { kind: 'closeAll' });
    round.memory[contender] = {
      replyKBPerSession: Number.NaN,
      idleKBPerSession: (idle.rss - empty.rss) / 1024 / sizes.idle,
      idleHeapKBPerSession: (idle.heapUsed - empty.heapUsed) / 1024 / sizes.idle,
      streamingKBPerSession: (streaming.rss - empty2.rss) / 1024 / sizes.streaming,
      streamingHeapKBPerSession: (streaming.heapUsed - empty2.heapUsed) / 1024 / sizes.streaming,
      idleRssMB: idle.rss / 2 ** 20,
    };
  });
  // A reply of three sentences, in a fresh process (RSS does not come back down after a peak),
  // measured 2 s into its first sentence: voxline has requested the second piece (its
  // look-ahead) while the first plays; a relay holds nothing ahead.
  await withServer(contender, async (port, server) => {
    await quiet();
    const empty = await stats(server);
    await call(loadgen, { kind: 'open', contender, port, sessions: sizes.streaming, speakText: replyText, tag: tag('r') });
    await new Promise((res) => setTimeout(res, 2_000));
    const reply = await stats(server);
    await call(loadgen, { kind: 'closeAll' });
    round.memory[contender]!.replyKBPerSession = (reply.rss - empty.rss) / 1024 / sizes.streaming;
    log(`${contender}: memory idle ${round.memory[contender]!.idleKBPerSession.toFixed(1)} KB/session, streaming ${round.memory[contender]!.streamingKBPerSession.toFixed(1)} KB/session (heap ${round.memory[contender]!.streamingHeapKBPerSession.toFixed(1)}), reply ${round.memory[contender]!.replyKBPerSession.toFixed(1)} KB/session`);
  });
}

for (let r = 0; r < rounds; r++) {
  const order = rotate(contenders, r);
  const round: Round = { order, ttfa: {}, stop: {}, capacity: {}, memory: {} };
  log(`round ${r + 1} of ${rounds}: ${order.join(', ')}`);
  if (runs('ttfa') || runs('stop')) for (const c of order) await latencyFigures(c, round);
  if (runs('capacity')) await capacityFigure(round, rotate(capacityContenders, r));
  if (runs('memory')) for (const c of order) await memoryFigure(c, round);
  perRound.push(round);
}

// Medians across rounds (the tables), and ratios to raw-ws per round (median and min–max).
const med = (values: number[]) => spread(values).median;
// `difference`: compared to raw-ws as contender minus raw-ws (ms), not as a ratio: raw-ws adds about
// nothing to the time to first audio, and a ratio to a figure near zero swings from -10× to +10× on noise.
const metrics: Record<string, { label: string; of: (round: Round, c: ContenderName) => number | undefined; contenders: ContenderName[]; compare?: 'difference' }> = {};
for (const c of contenders) {
  report.ttfa[c] = {};
  report.ttfaBaseline[c] = {};
  report.ttfaCpuMs[c] = {};
  report.stop[c] = {};
  for (const n of runs('ttfa') ? sizes.ttfa : []) {
    const rs = perRound.map((rd) => rd.ttfa[c]![n]!);
    report.ttfa[c]![n] = { n: rounds, p50: med(rs.map((t) => t.added50)), p99: med(rs.map((t) => t.added99)) };
    report.ttfaBaseline[c]![n] = { n: rounds, p50: med(rs.map((t) => t.base50)), p99: med(rs.map((t) => t.base99)) };
    report.ttfaCpuMs[c]![n] = med(rs.map((t) => t.cpuMs));
  }
  for (const n of runs('stop') ? sizes.stop : []) {
    const rs = perRound.map((rd) => rd.stop[c]![n]!);
    const m = (f: (x: (typeof rs)[number]) => number) => med(rs.map(f));
    report.stop[c]![n] = { toEnd: { n: rounds, p50: m((x) => x.toEnd.p50), p99: m((x) => x.toEnd.p99) }, toRelease: { n: rounds, p50: m((x) => x.toRelease.p50), p99: m((x) => x.toRelease.p99) } };
  }
  if (runs('memory')) {
    const rs = perRound.map((rd) => rd.memory[c]!);
    report.memory[c] = {
      idle: sizes.idle,
      streaming: sizes.streaming,
      idleKBPerSession: med(rs.map((x) => x.idleKBPerSession)),
      idleHeapKBPerSession: med(rs.map((x) => x.idleHeapKBPerSession)),
      streamingKBPerSession: med(rs.map((x) => x.streamingKBPerSession)),
      streamingHeapKBPerSession: med(rs.map((x) => x.streamingHeapKBPerSession)),
      replyKBPerSession: med(rs.map((x) => x.replyKBPerSession)),
      idleRssMB: med(rs.map((x) => x.idleRssMB)),
      ...(runs('capacity') && perRound[0]!.capacity[c] ? { afterLoadRssMB: med(perRound.map((rd) => rd.capacity[c]!.afterLoadRssMB)) } : {}),
    };
  }
}
for (const c of runs('capacity') ? capacityContenders : []) {
  const rs = perRound.map((rd) => rd.capacity[c]!);
  report.capacity[c] = { maxStreams: med(rs.map((x) => x.maxStreams)), cpuMsPerAudioSecond: med(rs.map((x) => x.cpuMsPerAudioSecond)), ramp: rs.flatMap((x) => x.ramp) };
}
if (runs('ttfa')) {
  for (const n of sizes.ttfa) {
    metrics[`ttfa50@${n}`] = { label: `time to first audio p50 through the server, ${n} sessions`, of: (rd, c) => (rd.ttfa[c]?.[n] ? rd.ttfa[c]![n]!.base50 + rd.ttfa[c]![n]!.added50 : undefined), contenders };
    metrics[`ttfaAdded50@${n}`] = { label: `added time to first audio p50, ${n} sessions (ms more than raw-ws adds)`, of: (rd, c) => rd.ttfa[c]?.[n]?.added50, contenders, compare: 'difference' };
    metrics[`cpuPerUtterance@${n}`] = { label: `CPU per utterance, ${n} sessions`, of: (rd, c) => rd.ttfa[c]?.[n]?.cpuMs, contenders };
  }
}
for (const n of runs('stop') ? sizes.stop : []) metrics[`stopToEnd99@${n}`] = { label: `STOP → end p99, ${n} streaming`, of: (rd, c) => rd.stop[c]?.[n]?.toEnd.p99, contenders };
if (runs('capacity')) {
  metrics.capacity = { label: 'real-time streams without underrun (per machine)', of: (rd, c) => rd.capacity[c]?.maxStreams, contenders: capacityContenders };
  metrics.capacityCpu = { label: 'CPU per streamed audio-second', of: (rd, c) => rd.capacity[c]?.cpuMsPerAudioSecond, contenders: capacityContenders };
}
if (runs('memory')) {
  metrics.memoryIdle = { label: 'idle RSS per session', of: (rd, c) => rd.memory[c]?.idleKBPerSession, contenders };
  metrics.memoryStreaming = { label: 'streaming RSS per session (one-piece utterance)', of: (rd, c) => rd.memory[c]?.streamingKBPerSession, contenders };
  metrics.memoryReply = { label: 'streaming RSS per session (three-sentence reply, 2 s in)', of: (rd, c) => rd.memory[c]?.replyKBPerSession, contenders };
}
const ratios: NonNullable<BenchResults['ratios']> = {};
for (const [key, m] of Object.entries(metrics)) {
  ratios[key] = { label: m.label, values: {}, ratios: {}, ...(m.compare ? { compare: m.compare } : {}) };
  for (const c of m.contenders) {
    ratios[key].values[c] = spread(perRound.map((rd) => m.of(rd, c) ?? Number.NaN));
    const toFloor = (rd: Round) => {
      const [own, floor] = [m.of(rd, c) ?? Number.NaN, m.of(rd, 'raw-ws') ?? Number.NaN];
      return m.compare === 'difference' ? own - floor : own / floor;
    };
    ratios[key].ratios[c] = spread(perRound.map(toFloor));
  }
}
results.rounds = perRound;
results.ratios = ratios;

// 6. Leak slope (voxline): heap and handles over many consecutive utterances, in a fresh process.
if (contenders.includes('voxline') && runs('leak')) {
  await withServer('voxline', async (port, server) => {
    await configureEmulator({ realtime: 0 });
    const samples: Array<[number, number]> = [];
    const handles: Array<[number, number]> = [];
    for (let b = 0; b < sizes.leakBatches; b++) {
      await call(loadgen, { kind: 'sequence', contender: 'voxline', port, count: sizes.leakBatch, parallel: 10, text: shortText, tag: tag('l') });
      const s = await stats(server);
      samples.push([(b + 1) * sizes.leakBatch, s.heapUsed]);
      handles.push([(b + 1) * sizes.leakBatch, s.handles]);
    }
    await configureEmulator({ realtime: 1 });
    // Skip the first batch (warm-up) for the slope.
    report.leak = { heapBytesPer1000: slope(samples.slice(1)) * 1000, handlesPer1000: slope(handles.slice(1)) * 1000, samples };
    log(`voxline: leak slope ${report.leak.heapBytesPer1000.toFixed(0)} B / 1000 utterances`);
  });
}

// 6b. Where the leak slope comes from: heap snapshots before and after many utterances,
// object kinds compared (bench/heapDiff.ts, its own process with its own server).
if (runs('leak')) {
  const { first } = await spawnChild('bench/heapDiff.ts', [String(sizes.heapWarm), String(sizes.heapMeasured)]);
  report.heapDiff = first as unknown as NonNullable<typeof report.heapDiff>;
  log(`voxline: heap diff over ${sizes.heapMeasured} utterances: ${report.heapDiff.appObjects} application objects, ${report.heapDiff.engineBytes} B of V8 code`);
}

// 5. The embedded voice: first audio with a warm pool, and real-time streams per core.
if (runs('espeak')) await withServer('voxline-espeak', async (port) => {
  const seq = await call<{ ttfa: number[] }>(loadgen, { kind: 'sequence', contender: 'voxline-espeak', port, count: sizes.espeakSeq, parallel: 1, text: shortText, tag: tag('e') });
  const par = await call<{ audioSeconds: number; wallSeconds: number }>(loadgen, {
    kind: 'sequence',
    contender: 'voxline-espeak',
    port,
    count: sizes.espeakStreams * 2,
    parallel: sizes.espeakStreams,
    text: longText,
    tag: tag('p'),
  });
  const realtimeFactor = par.audioSeconds / par.wallSeconds;
  report.espeak = { ttfa: summarize(seq.ttfa.slice(1)), realtimeFactor, streamsPerCore: realtimeFactor / Math.max(1, os.cpus().length) };
  log(`espeak: ttfa p50 ${report.espeak.ttfa.p50.toFixed(1)} ms, ${realtimeFactor.toFixed(1)}x real time`);
});

// 7. Listening: PocketSphinx's CPU per listened audio-second (its own process, bench/listening.ts).
if (runs('listening')) {
  const { child, first } = await spawnChild('bench/listening.ts', [String(sizes.listenSentences)]);
  child.kill();
  report.listening = first as unknown as NonNullable<typeof report.listening>;
  const l = report.listening;
  log(`pocketsphinx: ${l.grammar.cpuMsPerAudioSecond.toFixed(1)} CPU ms per audio-second with a grammar, ${l.general.cpuMsPerAudioSecond.toFixed(1)} with the general model (WER ${(l.general.wer * 100).toFixed(0)}%), start ${l.startMs.toFixed(0)} ms`);
}

// 8. The chat adapter's share of the time to first token (bench/chatFirstToken.ts, its own process).
if (runs('chat')) {
  const { first } = await spawnChild('bench/chatFirstToken.ts', [String(sizes.chatRounds)]);
  report.chat = first as unknown as ChatFirstTokenFigure;
  for (const [name, a] of Object.entries(report.chat.adapters)) log(`chat: ${name} adds p50 ${a.addedP50.toFixed(2)} ms to the first token (direct p50 ${report.chat.direct.p50.toFixed(2)} ms)`);
}

// 9. Voice-to-voice latency of the agent turn, split into its parts (bench/voiceToVoice.ts, its own process).
if (runs('voice')) {
  const { first } = await spawnChild('bench/voiceToVoice.ts', [String(sizes.voiceTurns), String(sizes.voiceConversations)]);
  report.voiceToVoice = first as unknown as VoiceToVoiceFigure;
  for (const [name, v] of Object.entries(report.voiceToVoice.stacks)) {
    log(`voice-to-voice (${name}): p50 ${v.total.p50.toFixed(0)} ms (endpointing ${v.endpointing.p50.toFixed(0)}, recognition ${v.recognition.p50.toFixed(0)}, first token ${v.firstToken.p50.toFixed(0)} of which the engine ${v.engineAdds.p50.toFixed(1)}, first audio ${v.firstAudio.p50.toFixed(0)})`);
  }
}

loadgen.kill();
emulator.child.kill();
results.report = report;
results.machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGB: os.totalmem() / 2 ** 30, node: process.version, os: `${os.type()} ${os.release()}` };
results.date = new Date().toISOString();
results.quick = quick;
results.sizes = sizes;
results.contenders = contenders;
results.capacityContenders = capacityContenders;
results.command = `npm run bench${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
results.firstByteDelayMs = firstByteDelayMs;

// Every figure must exist; quick mode asserts only this.
const missing: string[] = [];
for (const c of contenders) {
  if (runs('ttfa')) for (const n of sizes.ttfa) if (!Number.isFinite(report.ttfa[c]?.[n]?.p50)) missing.push(`ttfa ${c} @${n}`);
  if (runs('stop')) for (const n of sizes.stop) if (!Number.isFinite(report.stop[c]?.[n]?.toEnd.p99)) missing.push(`stop ${c} @${n}`);
  if (runs('memory') && !Number.isFinite(report.memory[c]?.idleKBPerSession)) missing.push(`memory ${c}`);
}
for (const c of runs('capacity') ? capacityContenders : []) if (!report.capacity[c] || report.capacity[c].ramp.length === 0) missing.push(`capacity ${c}`);
if (runs('espeak') && (!report.espeak || !Number.isFinite(report.espeak.ttfa.p50))) missing.push('espeak');
if (runs('leak') && contenders.includes('voxline') && !report.leak) missing.push('leak');
if (runs('leak') && !report.heapDiff) missing.push('heap diff');
if (runs('listening') && !(Number.isFinite(report.listening?.grammar.cpuMsPerAudioSecond) && Number.isFinite(report.listening?.general.cpuMsPerAudioSecond))) missing.push('listening');
if (runs('chat') && !Object.values(report.chat?.adapters ?? {}).some((a) => Number.isFinite(a.addedP50))) missing.push('chat first token');
if (runs('voice') && !Object.values(report.voiceToVoice?.stacks ?? {}).every((v) => Number.isFinite(v.total.p50) && Number.isFinite(v.engineAdds.p50))) missing.push('voice-to-voice');

mkdirSync('bench/results', { recursive: true });
writeFileSync(`bench/results/${only ? 'only' : quick ? 'quick' : 'latest'}.json`, JSON.stringify(results, null, 2));
if (!quick && !only && !values.contenders) {
  mkdirSync('docs/images', { recursive: true });
  writeFileSync('docs/images/bench-ttfa.svg', lineChart('Added time to first audio, p50 (ms)', 'concurrent sessions', sizes.ttfa, contenders.map((c) => ({ name: c, values: sizes.ttfa.map((n) => report.ttfa[c]![n]!.p50) }))));
  writeFileSync('docs/images/bench-capacity.svg', barChart('Real-time streams without underrun (200 ms jitter buffer)', capacityContenders.map((c) => ({ name: c, value: report.capacity[c]!.maxStreams }))));
  writeFileSync(values.out!, renderReport(results as unknown as BenchResults));
}
log(missing.length === 0 ? `bench: every figure produced (${quick ? 'quick' : 'full'} run)` : `bench: MISSING ${missing.join(', ')}`);
process.exit(missing.length === 0 ? 0 : 1);
