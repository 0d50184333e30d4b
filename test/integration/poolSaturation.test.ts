// Issue 15, item 9: a saturated synth pool must not cut utterances mid-stream. Many clients
// speak long texts at once on a pool of two workers, with a chunk-gap timeout far shorter than
// a turn in the pool's queue. An utterance whose audio started waits its turn for every later
// piece without being taken for a stalled upstream; new work beyond the queue's bound is
// refused at once with `provider_busy` and a retry-after, not left to time out.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { espeakProvider, type EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import type { ServerMessage } from '../../machines/types.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

type SpeakEnd = Extract<ServerMessage, { type: 'speak.end' }>;

const workers = 2;
const maxWaitingPerWorker = 4;
const sessions = 30;

let voxline: VoxlineServer;
let provider: EspeakProvider;
let url: string;

beforeAll(async () => {
  provider = espeakProvider({ size: workers, maxWaitingPerWorker });
  voxline = createVoxlineServer({
    providers: [provider],
    limits: { chunkGapTimeoutMs: 400, firstAudioTimeoutMs: 60_000, maxTextChars: 60_000 },
  });
  const { url: base } = await voxline.listen(0, '127.0.0.1');
  url = `${base.replace('http', 'ws')}/v1/voice`;
  await voxline.engine.ready();
});

afterAll(async () => {
  await voxline?.close();
});

/** About 1 000 characters: four pieces of the embedded voice, each waiting its turn in the pool. */
const longText = Array.from({ length: 20 }, (_, i) => `Sentence ${i} of a long answer keeps going.`).join(' ');

it('no utterance whose audio started ends upstream_stalled; excess new work is refused with provider_busy', async () => {
  const clients = await Promise.all(Array.from({ length: sessions }, () => TestVoiceClient.start(url)));
  for (const [i, c] of clients.entries()) c.send({ type: 'speak', id: `u${i}`, text: longText });
  const ends = await Promise.all(clients.map((c, i) => c.waitForEnd(`u${i}`, 60_000)));

  const started = ends.filter((_, i) => clients[i]!.frames.some((f) => f.kind === 'audio'));
  const stalled = started.filter((e) => e.error?.code === 'upstream_stalled');
  expect(stalled).toEqual([]);
  // Every utterance either completed or was refused before it began; nothing timed out.
  for (const [i, end] of ends.entries()) {
    if (end.reason === 'completed') continue;
    expect(end).toMatchObject({ reason: 'failed', error: { code: 'provider_busy' } });
    expect(end.error!.retryAfterMs).toBeGreaterThan(0);
    expect(end.stats.chunks).toBe(0);
    expect(clients[i]!.frames.some((f) => f.kind === 'audio')).toBe(false);
  }
  const refused = ends.filter((e: SpeakEnd) => e.error?.code === 'provider_busy');
  const completed = ends.filter((e: SpeakEnd) => e.reason === 'completed');
  // More sessions than workers plus the queue's bound: some must have been refused, and those
  // that got in were carried to their end.
  expect(refused.length).toBeGreaterThan(0);
  expect(completed.length).toBeGreaterThanOrEqual(workers);
  expect(completed.length + refused.length).toBe(sessions);
  expect(provider.poolStats().refusedBusy).toBe(refused.length);
  for (const c of clients) assertContract(c.frames);

  // Once the load is gone, a refused client's retry goes through.
  const retry = clients[ends.findIndex((e) => e.error?.code === 'provider_busy')]!;
  retry.send({ type: 'speak', id: 'retry', text: 'Trying again after the wait.' });
  expect(await retry.waitForEnd('retry', 30_000)).toMatchObject({ reason: 'completed' });
  for (const c of clients) c.close();
}, 120_000);
