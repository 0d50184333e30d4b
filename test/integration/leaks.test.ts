// 1 000 connect / speak / disconnect cycles against the real server: sessions, upstream
// jobs and requests, handles (sockets, timers) and listeners return to their baseline, and
// the heap after GC grows by less than a stated bound.
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { settle } from '../support/settle.js';
import { TestVoiceClient } from '../support/voiceClient.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap growth allowed over 1 000 cycles, after GC. */
const heapBoundBytes = 8 * 1024 * 1024;

let emu: GroqEmulator;
let voxline: VoxlineServer;
let url: string;

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'k' });
  voxline = createVoxlineServer({ providers: [groqProvider({ apiKey: 'k', baseURL: await emu.listen() })], metrics: true });
  url = `${(await voxline.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
});

afterAll(async () => {
  await voxline?.close();
  await emu?.close();
});

async function cycle(i: number): Promise<void> {
  const c = await TestVoiceClient.start(url);
  c.send({ type: 'speak', id: `c${i}`, text: i % 3 === 0 ? 'Stopped on the way.' : 'Short.' });
  if (i % 3 === 0) c.send({ type: 'stop' });
  await c.waitForEnd(`c${i}`);
  // Every other client leaves without a close handshake.
  if (i % 2 === 0) c.ws.terminate();
  else c.close();
}

async function cycles(from: number, count: number, parallel = 8): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < from + count) await cycle(next++);
    }),
  );
  await settle(() => voxline.engine.stats().sessions === 0 && voxline.engine.stats().upstreamJobs === 0 && emu.stats().active === 0, 5_000, 'release');
}

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().heapUsed;
}

it('1 000 connect / speak / disconnect cycles leave nothing behind', async () => {
  await cycles(0, 100); // warm-up: JIT, pools, caches
  const baseline = { resources: resources(), heap: await heapAfterGc(), listeners: voxline.server.listenerCount('upgrade') };
  await cycles(100, 1_000);
  const after = { resources: resources(), heap: await heapAfterGc(), listeners: voxline.server.listenerCount('upgrade') };
  const stats = voxline.engine.stats();
  expect(stats).toMatchObject({ sessions: 0, upstreamJobs: 0, utterancesAccepted: 1_100, utterancesEnded: 1_100 });
  expect(emu.stats().active).toBe(0);
  expect(after.listeners).toBe(baseline.listeners);
  // Timers and sockets back to baseline (a few pooled keep-alive sockets may come and go).
  for (const kind of ['Timeout', 'TCPSocketWrap', 'TCPWrap']) {
    expect(after.resources[kind] ?? 0, kind).toBeLessThanOrEqual((baseline.resources[kind] ?? 0) + 4);
  }
  const growth = after.heap - baseline.heap;
  expect(growth, `heap grew ${(growth / 1024 / 1024).toFixed(1)} MB`).toBeLessThan(heapBoundBytes);
}, 180_000);
