// `node --expose-gc --import tsx bench/streamingMemory.ts [sessions] [contender]`: where a streaming
// session's memory goes. A server (voxline, or raw-ws for comparison; compiled, as the bench runs
// it) runs in this process, the Groq emulator and the clients (bench/loadgen.ts) in their own. A
// heap snapshot is taken before the sessions open and another once every one of `sessions`
// sessions, each speaking one sentence, has its first audio. Printed per session: the growth of heap, external and array
// buffer memory; every ArrayBuffer (the audio) grouped by the chain of objects that keeps it
// alive; and the object kinds (constructor names) that grew the most.
process.setSourceMapsEnabled(false); // as in production (see bench/serverProcess.ts)
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeHeapSnapshot } from 'node:v8';
import { pathToFileURL } from 'node:url';
import type { groqProvider as GroqProvider } from '../src/providers/groq/groqProvider.js';
import type { createVoxlineServer as CreateVoxlineServer } from '../src/server/voxlineServer.js';
import type { attachRawRelay as AttachRawRelay } from './contenders/relays.js';
import { longText, type ContenderName } from './common.js';
import { call, compileContenders, spawnChild } from './harness.js';
import { objectKinds, readSnapshot, type HeapSnapshot } from './heapSnapshot.js';

const sessions = Number(process.argv[2] ?? 300);
const contender = (process.argv[3] ?? 'voxline') as ContenderName;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx');
// The servers are the compiled build the bench runs, loaded into this process: under tsx every named
// function would be wrapped to keep its name, which gives each closure a property store of its own
// (about a quarter of a kilobyte) that production code does not have.
await compileContenders();
const built = (path: string) => import(pathToFileURL(`bench/results/build/${path}`).href);
const { groqProvider } = (await built('src/providers/groq/groqProvider.js')) as { groqProvider: typeof GroqProvider };
const { createVoxlineServer } = (await built('src/server/voxlineServer.js')) as { createVoxlineServer: typeof CreateVoxlineServer };
const { attachRawRelay } = (await built('bench/contenders/relays.js')) as { attachRawRelay: typeof AttachRawRelay };
const { child: emulator, first } = await spawnChild('bench/emulatorProcess.ts', ['20']);
const upstream = first.url as string;
const { child: loadgen } = await spawnChild('bench/loadgen.ts');
let port: number;
let close: () => Promise<void>;
if (contender === 'voxline') {
  const server = createVoxlineServer({ providers: [groqProvider({ apiKey: 'bench', baseURL: upstream })], metrics: false, maxConnectionsPerIp: 100_000, abuse: { maxSessionsPerKey: 100_000 } });
  await server.engine.ready();
  port = (await server.listen(0, '127.0.0.1')).port;
  close = () => server.close();
} else {
  const server = createServer();
  attachRawRelay(server, upstream);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  close = () => new Promise((resolve) => server.close(() => resolve()));
}

async function snapshot(name: string): Promise<{ file: string; memory: NodeJS.MemoryUsage }> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 30));
  }
  const memory = process.memoryUsage();
  return { memory, file: writeHeapSnapshot(`bench/results/${name}.heapsnapshot`) };
}

// A warm-up round, so code, pools and connections exist before the baseline.
await call(loadgen, { kind: 'open', contender, port, sessions: 20, speakText: longText, tag: 'w' });
await call(loadgen, { kind: 'closeAll' });
await new Promise((r) => setTimeout(r, 500));
const before = await snapshot('before');
await call(loadgen, { kind: 'open', contender, port, sessions, speakText: longText, tag: 'm' });
const during = await snapshot('streaming');
await call(loadgen, { kind: 'closeAll' });
loadgen.kill();
emulator.kill();
await close();

const kb = (bytes: number) => (bytes / 1024 / sessions).toFixed(2).padStart(7);

/** Every ArrayBuffer's bytes, by the chain of its first retainers. */
function bufferChains(snap: HeapSnapshot): Map<string, { bytes: number; count: number }> {
  const nf = snap.snapshot.meta.node_fields;
  const ef = snap.snapshot.meta.edge_fields;
  const [nType, nName, nSize, nEdges] = ['type', 'name', 'self_size', 'edge_count'].map((f) => nf.indexOf(f)) as [number, number, number, number];
  const [eType, eTo] = ['type', 'to_node'].map((f) => ef.indexOf(f)) as [number, number];
  const nodeTypes = snap.snapshot.meta.node_types[0];
  const edgeTypes = snap.snapshot.meta.edge_types[0];
  const count = snap.nodes.length / nf.length;
  const retainer = new Int32Array(count).fill(-1);
  for (let n = 0, e = 0; n < count; n++) {
    for (let k = 0; k < snap.nodes[n * nf.length + nEdges]!; k++, e += ef.length) {
      const type = edgeTypes[snap.edges[e + eType]!];
      if (type === 'weak' || type === 'shortcut') continue;
      const to = snap.edges[e + eTo]! / nf.length;
      if (retainer[to] === -1) retainer[to] = n;
    }
  }
  const label = (n: number) => `${nodeTypes[snap.nodes[n * nf.length + nType]!]}:${snap.strings[snap.nodes[n * nf.length + nName]!]!.slice(0, 40)}`;
  const by = new Map<string, { bytes: number; count: number }>();
  for (let n = 0; n < count; n++) {
    const name = snap.strings[snap.nodes[n * nf.length + nName]!]!;
    if (!name.includes('JSArrayBufferData')) continue;
    // A WebAssembly memory (ArrayBuffer < Memory: the VAD's, the resampler's, undici's parser's) exists before any
    // session opens; the snapshot may reach it through a different first retainer each time,
    // which would show it as new. It is not per-session memory, so it is left out.
    const owner = retainer[n]! === -1 ? -1 : retainer[retainer[n]!]!;
    if (owner !== -1 && label(owner) === 'object:Memory') continue;
    const chain: string[] = [];
    for (let r = retainer[n]!, d = 0; r !== -1 && d < Number(process.env.DEPTH ?? 6); r = retainer[r]!, d++) chain.push(label(r));
    const key = chain.join(' < ');
    const entry = by.get(key) ?? { bytes: 0, count: 0 };
    entry.bytes += snap.nodes[n * nf.length + nSize]!;
    entry.count++;
    by.set(key, entry);
  }
  return by;
}

const [a, b] = [readSnapshot(before.file), readSnapshot(during.file)];
const m = (k: 'heapUsed' | 'external' | 'arrayBuffers' | 'rss') => kb(during.memory[k] - before.memory[k]);
process.stdout.write(`${contender}, ${sessions} streaming sessions, growth per session (KB): rss ${m('rss')}, heap ${m('heapUsed')}, external ${m('external')}, of which array buffers ${m('arrayBuffers')}\n`);
process.stdout.write('\narray buffers by what keeps them (KB per session, count; WebAssembly memories left out):\n');
const chainsBefore = bufferChains(a);
for (const [k, v] of [...bufferChains(b)].map(([k, v]) => [k, { bytes: v.bytes - (chainsBefore.get(k)?.bytes ?? 0), count: v.count - (chainsBefore.get(k)?.count ?? 0) }] as const).sort((x, y) => y[1].bytes - x[1].bytes).slice(0, 10)) {
  process.stdout.write(`${kb(v.bytes)} ${String(v.count).padStart(6)}×  ${k}\n`);
}
process.stdout.write('\nheap objects that grew (KB per session, count per session):\n');
const kindsBefore = objectKinds(a);
for (const [k, v] of [...objectKinds(b)].map(([k, v]) => [k, { size: v.size - (kindsBefore.get(k)?.size ?? 0), count: v.count - (kindsBefore.get(k)?.count ?? 0) }] as const).sort((x, y) => y[1].size - x[1].size).slice(0, Number(process.env.TOP ?? 30))) {
  process.stdout.write(`${kb(v.size)} ${(v.count / sessions).toFixed(1).padStart(7)}  ${k}\n`);
}
process.exit(0);
