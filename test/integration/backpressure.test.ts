// A client that stops reading: the engine stops pulling from the provider above the
// high-water mark, and cuts the client off once it stayed stalled past writeStallTimeout.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import type { UtteranceEndedEvent } from '../../src/engine/voiceEngine.js';
import { TestVoiceClient } from '../support/voiceClient.js';

let voxline: VoxlineServer;
let url: string;
const ends: UtteranceEndedEvent[] = [];

beforeAll(async () => {
  voxline = createVoxlineServer({
    espeakWorkers: 1,
    highWaterBytes: 32 * 1024,
    lowWaterBytes: 8 * 1024,
    limits: { writeStallTimeoutMs: 1_500, maxTextChars: 60_000, chunkGapTimeoutMs: 30_000 },
  });
  voxline.engine.on('utteranceEnded', (e) => ends.push(e));
  const { url: base } = await voxline.listen(0, '127.0.0.1');
  url = `${base.replace('http', 'ws')}/v1/voice`;
  await voxline.engine.ready();
});

afterAll(async () => {
  await voxline?.close();
});

it('a client that stops reading is paused, then cut off after the write-stall timeout, and everything is released', async () => {
  const c = await TestVoiceClient.start(url);
  const text = Array.from({ length: 400 }, (_, i) => `Sentence ${i} keeps the voice busy for a while.`).join(' ');
  c.send({ type: 'speak', id: 'flood', text });
  await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
  // Stop reading from the socket: the kernel buffers fill, then the server's send buffer grows.
  const raw = (c.ws as unknown as { _socket: import('node:net').Socket })._socket;
  raw.pause();
  const started = Date.now();
  while (!ends.some((e) => e.id === 'flood') && Date.now() - started < 30_000) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const end = ends.find((e) => e.id === 'flood');
  expect(end).toMatchObject({ reason: 'failed', error: { code: 'client_stalled' } });
  // Bounded: the text is ~1 000 s of speech and eSpeak makes ~200 s of audio per second
  // unpaused; paused at the high-water mark, only what the socket buffers held was made.
  expect(end!.stats.durationMs).toBeLessThan(250_000);
  while ((voxline.engine.stats().sessions > 0 || voxline.engine.stats().upstreamJobs > 0) && Date.now() - started < 30_000) {
    await new Promise((r) => setTimeout(r, 20));
  }
  expect(voxline.engine.stats()).toMatchObject({ sessions: 0, upstreamJobs: 0 });
  raw.resume();
  expect(await c.waitForClose()).toBeGreaterThan(0);
});
