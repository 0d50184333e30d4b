// Issue 15, item 3: a client that stops reading while a long utterance streams must not make
// the server hold the utterance's audio. The socket holds up to the high-water mark; behind it
// the look-ahead piece keeps at most its bound and each provider request at most its queue
// bound, after which the worker's output stops being read. Driven as an attacker would: real
// WebSocket clients that simply stop reading their sockets.
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { espeakProvider, type EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { defaultLookAheadBytes } from '../../src/engine/synthesisActor.js';
import type { UtteranceEndedEvent } from '../../src/engine/voiceEngine.js';
import { TestVoiceClient } from '../support/voiceClient.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const highWaterBytes = 32 * 1024;
const maxJobBufferBytes = 64 * 1024;
/** One read from a worker's pipe (its frames are queued whole before the pool can stop reading). */
const pipeRead = 64 * 1024;
/**
 * The bound per stalled utterance behind its socket: the look-ahead's buffer, plus the queues of
 * its two provider requests (the playing piece and the look-ahead), each over its bound by at
 * most one pipe read.
 */
const heldBound = defaultLookAheadBytes + 2 * (maxJobBufferBytes + pipeRead);

let voxline: VoxlineServer;
let provider: EspeakProvider;
let url: string;
const ends: UtteranceEndedEvent[] = [];

beforeAll(async () => {
  provider = espeakProvider({ size: 2, maxJobBufferBytes, maxHeldMs: 1_000 });
  voxline = createVoxlineServer({
    providers: [provider],
    highWaterBytes,
    lowWaterBytes: 8 * 1024,
    limits: { writeStallTimeoutMs: 10_000, maxTextChars: 60_000, chunkGapTimeoutMs: 30_000 },
  });
  voxline.engine.on('utteranceEnded', (e) => ends.push(e));
  const { url: base } = await voxline.listen(0, '127.0.0.1');
  url = `${base.replace('http', 'ws')}/v1/voice`;
  await voxline.engine.ready();
});

afterAll(async () => {
  await voxline?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Audio-dense text (digits are spoken one by one: ~6 KB of 22 kHz audio per character), several thousand characters. */
function denseText(chars: number): string {
  const sentence = 'Call 1 2 3 4 5 6 7 8 9 0, then 0 9 8 7 6 5 4 3 2 1 now.';
  return Array.from({ length: Math.ceil(chars / (sentence.length + 1)) }, () => sentence).join(' ');
}

function arrayBufferBytes(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

it('clients that stop reading hold at most the high-water mark plus the bounded pieces, and let go when cut off', async () => {
  // At the voice's own rate (no resampler, whose wasm memory would swamp the measure). One
  // normal utterance first, so whatever the path allocates once exists before the baseline.
  const start = { format: { sampleRate: 22_050 } };
  const warm = await TestVoiceClient.start(url, start);
  warm.send({ type: 'speak', id: 'warm', text: 'Warming the path up once.' });
  await warm.waitForEnd('warm');
  warm.close();
  await sleep(100);
  const baseline = arrayBufferBytes();

  const stalled = 3;
  const clients = await Promise.all(Array.from({ length: stalled }, () => TestVoiceClient.start(url, start)));
  for (const [i, c] of clients.entries()) {
    // Stop reading first: nothing the server writes is taken, the kernel buffers fill, then the server's.
    (c.ws as unknown as { _socket: Socket })._socket.pause();
    c.send({ type: 'speak', id: `stall-${i}`, text: denseText(6_000) });
  }

  // Watch what the server holds while the clients stay stalled (well inside the write-stall timeout).
  let maxHeld = 0;
  // At least 6 s, and until every stalled client has paused its upstream (slower when the machine is busy).
  const watchUntil = Date.now() + 6_000;
  const watchDeadline = Date.now() + 30_000;
  while ((Date.now() < watchUntil || voxline.engine.stats().backpressurePauses < stalled) && Date.now() < watchDeadline) {
    maxHeld = Math.max(maxHeld, voxline.engine.stats().heldAudioBytes);
    await sleep(20);
  }
  expect(voxline.engine.stats().backpressurePauses).toBeGreaterThanOrEqual(stalled);
  // From outside the engine: audio buffers alive after a full GC. Without the bounds each stalled
  // client kept its playing piece and its look-ahead whole (~7.7 MB for the three here).
  const grown = arrayBufferBytes() - baseline;
  expect(grown).toBeLessThan(stalled * (heldBound + highWaterBytes + pipeRead) + 1024 * 1024);
  // The engine's own count of it.
  expect(maxHeld).toBeGreaterThan(0);
  expect(maxHeld).toBeLessThanOrEqual(stalled * heldBound);

  // Cut off at the write-stall timeout: every utterance ends once, and everything held is let go.
  for (let i = 0; i < stalled; i++) {
    const deadline = Date.now() + 15_000;
    while (!ends.some((e) => e.id === `stall-${i}`) && Date.now() < deadline) await sleep(50);
    expect(ends.filter((e) => e.id === `stall-${i}`)).toMatchObject([{ reason: 'failed', error: { code: 'client_stalled' } }]);
  }
  const deadline = Date.now() + 10_000;
  while ((voxline.engine.stats().upstreamJobs > 0 || provider.poolStats().busy > 0) && Date.now() < deadline) await sleep(20);
  expect(voxline.engine.stats()).toMatchObject({ upstreamJobs: 0, heldAudioBytes: 0 });
  expect(provider.poolStats()).toMatchObject({ busy: 0, bufferedBytes: 0, waiting: 0 });

  // The workers that were held back serve the next client at once.
  const next = await TestVoiceClient.start(url);
  next.send({ type: 'speak', id: 'after', text: 'The voice is free again.' });
  expect(await next.waitForEnd('after')).toMatchObject({ reason: 'completed' });
  next.close();
  for (const c of clients) (c.ws as unknown as { _socket: Socket })._socket.resume();
}, 40_000);
