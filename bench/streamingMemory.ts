// `node --expose-gc --import tsx bench/streamingMemory.ts [sessions]`: where a streaming session's
// memory goes. Opens `sessions` voxline sessions (emulator upstream in its own process), each
// speaking one sentence, and once every one has its first audio takes a heap snapshot and groups
// the bytes of every ArrayBuffer (the audio) by the chain of objects that keeps it alive.
process.setSourceMapsEnabled(false); // as in production (see bench/serverProcess.ts)
import { fork } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { groqProvider } from '../src/providers/groq/groqProvider.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
import { connect } from './clients.js';
import { longText } from './common.js';

const sessions = Number(process.argv[2] ?? 300);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx');
const emulator = fork('bench/emulatorProcess.ts', ['20'], { execArgv: ['--import', 'tsx'] });
const upstream = await new Promise<string>((resolve) => emulator.once('message', (m: { url: string }) => resolve(m.url)));
const server = createVoxlineServer({ providers: [groqProvider({ apiKey: 'bench', baseURL: upstream })], metrics: false, maxConnectionsPerIp: 100_000, abuse: { maxSessionsPerKey: 100_000 } });
await server.engine.ready();
const { port } = await server.listen(0, '127.0.0.1');
const clients = await Promise.all(Array.from({ length: sessions }, () => connect('voxline', port)));
await Promise.all(clients.map((c, i) => new Promise<void>((resolve) => {
  c.onAudio = () => resolve();
  c.speak(`m${i}`, `Mark ${i}. ${longText}`);
})));
for (let i = 0; i < 3; i++) {
  gc();
  await new Promise((r) => setTimeout(r, 30));
}
const m = process.memoryUsage();
const file = writeHeapSnapshot('bench/results/streaming.heapsnapshot');
for (const c of clients) c.close();
emulator.kill();

const snap = JSON.parse(readFileSync(file, 'utf8')) as {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
};
if (!process.env.KEEP_SNAPSHOTS) rmSync(file);
const nf = snap.snapshot.meta.node_fields;
const ef = snap.snapshot.meta.edge_fields;
const [nType, nName, nSize, nEdges] = ['type', 'name', 'self_size', 'edge_count'].map((f) => nf.indexOf(f)) as [number, number, number, number];
const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((f) => ef.indexOf(f)) as [number, number, number];
const nodeTypes = snap.snapshot.meta.node_types[0];
const edgeTypes = snap.snapshot.meta.edge_types[0];
const W = nf.length;
const EW = ef.length;
const count = snap.nodes.length / W;
const retainer = new Int32Array(count).fill(-1);
let e = 0;
for (let n = 0; n < count; n++) {
  const edges = snap.nodes[n * W + nEdges]!;
  for (let k = 0; k < edges; k++, e += EW) {
    const type = edgeTypes[snap.edges[e + eType]!];
    if (type === 'weak' || type === 'shortcut') continue;
    const to = snap.edges[e + eTo]! / W;
    if (retainer[to] === -1) retainer[to] = n;
  }
}
const label = (n: number) => `${nodeTypes[snap.nodes[n * W + nType]!]}:${snap.strings[snap.nodes[n * W + nName]!]!.slice(0, 40)}`;
const byChain = new Map<string, { bytes: number; count: number }>();
let total = 0;
for (let n = 0; n < count; n++) {
  const name = snap.strings[snap.nodes[n * W + nName]!]!;
  if (!name.includes('JSArrayBufferData') && !(nodeTypes[snap.nodes[n * W + nType]!] === 'native' && name.includes('ArrayBuffer'))) continue;
  const size = snap.nodes[n * W + nSize]!;
  total += size;
  const chain: string[] = [];
  for (let r = retainer[n]!, d = 0; r !== -1 && d < Number(process.env.DEPTH ?? 7); r = retainer[r]!, d++) chain.push(label(r));
  const key = chain.join(' < ');
  const entry = byChain.get(key) ?? { bytes: 0, count: 0 };
  entry.bytes += size;
  entry.count++;
  byChain.set(key, entry);
}
process.stdout.write(`${sessions} streaming sessions: heapUsed ${(m.heapUsed / 1024 / sessions).toFixed(1)} KB, arrayBuffers ${(m.arrayBuffers / 1024 / sessions).toFixed(1)} KB per session (whole process); array buffer bytes in the snapshot ${(total / 1024 / sessions).toFixed(1)} KB per session\n`);
for (const [k, v] of [...byChain].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 15)) {
  process.stdout.write(`${(v.bytes / 1024 / sessions).toFixed(2).padStart(7)} KB/session ${String(v.count).padStart(6)}×  ${k}\n`);
}
await server.close();
process.exit(0);
