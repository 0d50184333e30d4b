// `tsx --expose-gc bench/heapDiff.ts [warm] [measured]`: where the leak slope comes from.
// Runs `warm` utterances through a voxline server (emulator upstream, no pacing), takes a
// heap snapshot, runs `measured` more, takes another, and prints the object kinds whose
// count grew: after a warm-up, anything growing with utterances is a leak candidate.
import { writeHeapSnapshot } from 'node:v8';
process.setSourceMapsEnabled(false); // as in production (see bench/serverProcess.ts)
import { mkdirSync } from 'node:fs';
import { GroqEmulator } from '../src/emulators/groqEmulator.js';
import { groqProvider } from '../src/providers/groq/groqProvider.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
import { connect } from './clients.js';
import { objectKinds, readSnapshot } from './heapSnapshot.js';

const [warm = 2000, measured = 5000] = process.argv.slice(2).map(Number);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const emu = new GroqEmulator({ firstByteDelayMs: 0, realtime: 0 });
const upstream = await emu.listen();
const server = createVoxlineServer({ providers: [groqProvider({ apiKey: 'bench', baseURL: upstream })], metrics: false });
await server.engine.ready();
const { port } = await server.listen(0, '127.0.0.1');

async function utterances(count: number, parallel = 10): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      const c = await connect('voxline', port);
      while (next < count) {
        const i = next++;
        await new Promise<void>((resolve) => {
          c.onEnd = () => resolve();
          c.speak(`h${i}`, `Good morning ${i}. Here is the weather.`);
        });
      }
      c.close();
    }),
  );
}

/** Collect garbage, then write a snapshot; returns its file and the heap in use. Parsed only at the end, so no parse result sits in the heap being measured. */
async function snapshot(): Promise<{ file: string; heapUsed: number }> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 50));
  }
  const heapUsed = process.memoryUsage().heapUsed;
  return { file: writeHeapSnapshot(`bench/results/heap-${Date.now()}.heapsnapshot`), heapUsed };
}

mkdirSync('bench/results', { recursive: true });
await utterances(warm);
const first = await snapshot();
await utterances(measured);
const second = await snapshot();
await server.close();
await emu.close();
const [heapBefore, heapAfter] = [first.heapUsed, second.heapUsed];
const before = objectKinds(readSnapshot(first.file));
const after = objectKinds(readSnapshot(second.file));
// V8's own growth (compiled code, feedback, system tables) comes from warming up, not from
// anything an utterance leaves behind; everything else is application objects.
const isEngineOwn = (kind: string) => kind.startsWith('code:') || kind.startsWith('hidden:') || kind.includes('system /');
let appObjects = 0;
let appBytes = 0;
let engineBytes = 0;
for (const kind of new Set([...before.keys(), ...after.keys()])) {
  const dc = (after.get(kind)?.count ?? 0) - (before.get(kind)?.count ?? 0);
  const ds = (after.get(kind)?.size ?? 0) - (before.get(kind)?.size ?? 0);
  if (isEngineOwn(kind)) engineBytes += ds;
  else {
    appObjects += dc;
    appBytes += ds;
  }
}
const grew = [...after.entries()]
  .map(([kind, a]) => ({ kind, count: a.count - (before.get(kind)?.count ?? 0), size: a.size - (before.get(kind)?.size ?? 0) }))
  .filter((d) => d.count > 0)
  .sort((x, y) => y.size - x.size)
  .slice(0, 20);
if (!process.send) process.stdout.write(`heap after GC: ${((heapAfter - heapBefore) / 1024).toFixed(1)} KB over ${measured} utterances (${(((heapAfter - heapBefore) / measured) * 1000 / 1024).toFixed(1)} KB per 1 000)\n`);
if (!process.send) for (const d of grew) process.stdout.write(`${String(d.count).padStart(7)} objects ${String(d.size).padStart(9)} B  ${d.kind}\n`);
if (!process.send) process.stdout.write(`application objects: ${appObjects >= 0 ? '+' : ''}${appObjects} (${appBytes} B); V8 code and system: ${engineBytes} B\n`);
const summary = { type: 'heapDiff', warm, measured, heapBytes: heapAfter - heapBefore, appObjects, appBytes, engineBytes };
if (process.send) process.send(summary, () => process.exit(0));
else process.exit(0);
