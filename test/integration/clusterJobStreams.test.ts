// JobStreams against a real redis-server: a gateway reads every job's audio through a few
// connections (lanes of 64 streams), each job's entries in order and once; a job added while its
// lane is blocked is read at once (the lane is woken, not left to its block timeout); a job whose
// consumer does not take holds at most `maxBuffered` entries in the gateway, the rest stays in Redis
// until it is taken; closing releases the connections. And the gateway's provider lets go of each
// block it handed on while it waits for the worker's next.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobStreams } from '../../src/cluster/jobStreams.js';
import { connectRedis, type Redis } from '../../src/cluster/redis.js';
import { RedisJobProvider, SynthWorker } from '../../src/cluster/synthJobs.js';
import { firstBlockCollectedDuringWait, gc } from '../support/blockRetention.js';
import { OneBlockProvider } from '../support/oneBlockProvider.js';
import { settle } from '../support/settle.js';
import { ToneProvider } from '../support/toneProvider.js';

import { startRedis, type RunningRedis } from '../support/redisServer.js';

let redis: RunningRedis;
let shared: Redis;
let admin: Redis;

beforeAll(async () => {
  redis = await startRedis();
  shared = await connectRedis(redis.url);
  admin = await connectRedis(redis.url);
}, 30_000);

afterAll(async () => {
  shared?.disconnect();
  admin?.disconnect();
  await redis?.stop();
});

const clients = async () => Number(/connected_clients:(\d+)/.exec(await admin.info('clients'))![1]);
const never = new AbortController().signal;

describe('JobStreams', () => {
  it('100 jobs over two connections: every entry once, in order, per job', async () => {
    const streams = new JobStreams(shared, { streamsPerLane: 64, blockMs: 10_000 });
    const before = await clients();
    const jobs = Array.from({ length: 100 }, (_, i) => ({ key: `t:job:${i}`, stream: streams.open(`t:job:${i}`) }));
    expect(streams.connections).toBe(2);
    const read = jobs.map(async ({ stream }) => {
      const got: string[] = [];
      for (let n = 0; n < 5; n++) {
        const entry = await stream.next(never);
        got.push(entry![1][1]!.toString());
      }
      return got;
    });
    for (let n = 0; n < 5; n++) {
      const pipeline = admin.pipeline();
      for (const { key } of jobs) pipeline.xadd(key, '*', 'n', String(n));
      await pipeline.exec();
    }
    for (const got of await Promise.all(read)) expect(got).toEqual(['0', '1', '2', '3', '4']);
    expect((await clients()) - before).toBeLessThanOrEqual(2);
    for (const { stream } of jobs) stream.close();
    streams.close();
  });

  it('a job added while its lane is blocked is read at once, not after the block (10 s here)', async () => {
    const streams = new JobStreams(shared, { blockMs: 10_000 });
    const first = streams.open('t:wake:a');
    await new Promise((r) => setTimeout(r, 300)); // the lane is now blocked on job a alone
    const second = streams.open('t:wake:b');
    const startedAt = Date.now();
    await admin.xadd('t:wake:b', '*', 'k', 'a');
    const entry = await second.next(never);
    expect(entry![1][1]!.toString()).toBe('a');
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    first.close();
    second.close();
    streams.close();
  });

  it('a consumer that does not take holds at most maxBuffered entries; the rest comes once it takes', async () => {
    const streams = new JobStreams(shared, { maxBuffered: 8, blockMs: 200 });
    const slow = streams.open('t:slow');
    const pipeline = admin.pipeline();
    for (let n = 0; n < 50; n++) pipeline.xadd('t:slow', '*', 'n', String(n));
    await pipeline.exec();
    await new Promise((r) => setTimeout(r, 600));
    expect((slow as unknown as { buffer: unknown[] }).buffer.length).toBeLessThanOrEqual(8);
    const got: number[] = [];
    for (let n = 0; n < 50; n++) got.push(Number((await slow.next(never))![1][1]!.toString()));
    expect(got).toEqual(Array.from({ length: 50 }, (_, n) => n));
    slow.close();
    streams.close();
  });

  it('an aborted wait returns null at once; a closed stream returns null', async () => {
    const streams = new JobStreams(shared, { blockMs: 10_000 });
    const job = streams.open('t:abort');
    const abort = new AbortController();
    const waiting = job.next(abort.signal);
    abort.abort();
    expect(await waiting).toBeNull();
    job.close();
    expect(await job.next(never)).toBeNull();
    streams.close();
  });
});

describe('RedisJobProvider (the gateway side of a job)', () => {
  it('lets go of each block it handed on while it waits for the next one', async () => {
    const tone = new ToneProvider({ pauseMs: 100 }); // the worker writes a block every 100 ms
    const worker = new SynthWorker(await connectRedis(redis.url), tone, { prefix: 'retention' });
    const gateway = new RedisJobProvider(await connectRedis(redis.url), tone.name, tone.voices, tone.maxPieceChars, { prefix: 'retention' });
    await gateway.ready();
    await worker.start();
    const stop = new AbortController();
    try {
      const blocks = gateway.synthesize({ text: 'A text long enough for several blocks of tone.', voice: 'tone', signal: stop.signal })[Symbol.asyncIterator]();
      expect(await firstBlockCollectedDuringWait(blocks)).toBe(true);
    } finally {
      stop.abort();
      await worker.stop();
      await gateway.close();
    }
  });

  it("the worker lets go of each block it wrote while it waits for its provider's next", async () => {
    const provider = new OneBlockProvider();
    const worker = new SynthWorker(await connectRedis(redis.url), provider, { prefix: 'retention-worker' });
    const gateway = new RedisJobProvider(await connectRedis(redis.url), provider.name, provider.voices, provider.maxPieceChars, { prefix: 'retention-worker' });
    await gateway.ready();
    await worker.start();
    const stop = new AbortController();
    const blocks = gateway.synthesize({ text: 'Hello.', voice: 'v', signal: stop.signal })[Symbol.asyncIterator]();
    try {
      // The gateway has the block: the worker wrote it and asked its provider for the next.
      expect((await blocks.next()).done).toBe(false);
      await settle(() => provider.waiting, 2_000, "the worker's wait for a second block");
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      expect(provider.first!.deref()).toBeUndefined();
    } finally {
      stop.abort();
      await blocks.return?.(undefined);
      // The job is cancelled, but the worker learns it only at its next write, which never comes here.
      await worker.stop(100);
      await gateway.close();
    }
  });
});
