// Synthesis on workers through Redis Streams (`--role gateway` / `--role worker`).
//
// A gateway's provider becomes a `RedisJobProvider`: each text piece is a job added to the
// provider's stream (`voxline:jobs:<provider>`), read by a consumer group of workers. The
// worker that takes it writes the audio into the job's own stream (`voxline:job:<id>`), which
// the gateway reads and yields as the provider's PCM blocks: the session machinery above is
// exactly the one-process one. Every write goes through one Lua step that refuses audio of a job
// already ended, and the end is recorded once (SET NX of the job's `ended` key), whoever records
// it: the worker (done, or failed), the gateway (cancelled: STOP, supersede, timeout), or another
// worker that claimed the job of a dead one (failed, provider_unavailable; no resynthesis). So a
// late frame or a lost cancel is harmless, and a job's end is acknowledged (XACK) only once it
// is recorded. Workers keep their jobs' claims fresh (XCLAIM … JUSTID) so a long job is never
// taken for dead; a job idle past `claimIdleMs` is, by XAUTOCLAIM. Every key expires.
import { randomUUID } from 'node:crypto';
import type { ErrorCode, VoiceInfo } from '../../machines/types.js';
import { nextItem } from '../providers/iteration.js';
import { ProviderError, type JobFence, type PcmBlock, type SynthesisRequest, type TtsProvider } from '../providers/types.js';
import { JobStreams } from './jobStreams.js';
import type { Redis } from './redis.js';

export interface JobKeys {
  prefix?: string;
  /** A job's stream and end mark expire this long after their last write. */
  ttlMs?: number;
}

const group = 'workers';

// KEYS[1] the job's stream, KEYS[2] its ended mark; ARGV: ttl, sample rate, pcm bytes.
// Audio of a job that ended is refused (0); else appended (1).
const appendScript = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('XADD', KEYS[1], '*', 'k', 'a', 'r', ARGV[2], 'p', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

// KEYS[1] the job's stream, KEYS[2] its ended mark; ARGV: ttl, status, code, message.
// The end is recorded once (1); every later attempt is a no-op (0). A gateway's cancel is fenced:
// KEYS[3] the session's record, ARGV[5] the epoch this gateway owns it by; a gateway that lost
// its session to another never cancels the jobs the new owner reads.
const endScript = `
if KEYS[3] and redis.call('HGET', KEYS[3], 'epoch') ~= ARGV[5] then return 0 end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'k', 'end', 's', ARGV[2], 'c', ARGV[3], 'm', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

// KEYS[1] the provider's queue, KEYS[2] the job's queued mark; ARGV: ttl, max queue length, job,
// voice, text. A job asked for twice (its session moved to another gateway) is queued once.
const enqueueScript = `
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'job', ARGV[3], 'voice', ARGV[4], 'text', ARGV[5])
return 1
`;

type JobStatus = 'done' | 'failed' | 'cancelled';

class Jobs {
  readonly prefix: string;
  readonly ttlMs: number;
  constructor(
    readonly redis: Redis,
    options: JobKeys,
  ) {
    this.prefix = options.prefix ?? 'voxline';
    this.ttlMs = options.ttlMs ?? 60_000;
  }
  queue(provider: string) {
    return `${this.prefix}:jobs:${provider}`;
  }
  stream(jobId: string) {
    return `${this.prefix}:job:${jobId}`;
  }
  ended(jobId: string) {
    return `${this.prefix}:job:${jobId}:ended`;
  }
  queued(jobId: string) {
    return `${this.prefix}:job:${jobId}:queued`;
  }
  async append(jobId: string, block: PcmBlock): Promise<boolean> {
    const pcm = Buffer.from(block.samples.buffer, block.samples.byteOffset, block.samples.byteLength);
    return (await this.redis.eval(appendScript, 2, this.stream(jobId), this.ended(jobId), this.ttlMs, block.sampleRate, pcm)) === 1;
  }
  /** The workers' group of `provider`'s queue, made if missing: from new entries on ('$'), or from the stream's start ('0'). */
  async ensureGroup(provider: string, from: '$' | '0' = '$'): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.queue(provider), group, from, 'MKSTREAM');
    } catch (error) {
      if (!/BUSYGROUP/.test((error as Error).message)) throw error;
    }
  }
  async end(jobId: string, status: JobStatus, code = '', message = ''): Promise<boolean> {
    return (await this.redis.eval(endScript, 2, this.stream(jobId), this.ended(jobId), this.ttlMs, status, code, message)) === 1;
  }
  async cancel(jobId: string, fence: JobFence | undefined): Promise<boolean> {
    if (!fence) return this.end(jobId, 'cancelled');
    return (await this.redis.eval(endScript, 3, this.stream(jobId), this.ended(jobId), fence.key, this.ttlMs, 'cancelled', '', '', fence.epoch)) === 1;
  }
}

/** Field pairs of a stream entry as a map (names as text). */
function fieldsOf(raw: Buffer[]): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i]!.toString(), raw[i + 1]!);
  return fields;
}

/**
 * The gateway side: a provider whose every piece is a job for the workers of `name`. Jobs are
 * queued and cancelled on one connection of the gateway's (with a deadline that suits a busy
 * gateway), and their audio is read through `JobStreams` (a few connections for all jobs).
 */
export class RedisJobProvider implements TtsProvider {
  private readonly jobs: Jobs;
  private readonly streams: JobStreams;
  private readonly maxQueuedJobs: number;

  constructor(
    redis: Redis,
    readonly name: string,
    readonly voices: VoiceInfo[],
    readonly maxPieceChars: number,
    options: JobKeys & { maxQueuedJobs?: number; streams?: JobStreams } = {},
  ) {
    const writer = redis.duplicate({ commandTimeout: 5_000, lazyConnect: true });
    writer.on('error', () => {});
    this.jobs = new Jobs(writer, options);
    this.streams = options.streams ?? new JobStreams(redis);
    this.maxQueuedJobs = options.maxQueuedJobs ?? 100_000;
  }

  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    // A recorded session's pieces have stable ids (session, stream, piece); others a random one.
    const jobId = request.job?.key ?? randomUUID();
    let ended = false;
    let queued = false;
    const audio = this.streams.open(this.jobs.stream(jobId));
    try {
      try {
        await this.connected();
        if (request.job) await this.jobs.redis.eval(enqueueScript, 2, this.jobs.queue(this.name), this.jobs.queued(jobId), this.jobs.ttlMs, this.maxQueuedJobs, jobId, request.voice, request.text);
        else await this.jobs.redis.xadd(this.jobs.queue(this.name), 'MAXLEN', '~', this.maxQueuedJobs, '*', 'job', jobId, 'voice', request.voice, 'text', request.text);
        queued = true;
      } catch (error) {
        if (request.signal.aborted) return;
        throw new ProviderError('provider_unavailable', `the synthesis queue cannot be reached (${(error as Error).message})`);
      }
      // The job's next block, or null at its end (or the abort). In a function of its own, and let
      // go of before the wait for the next: see ../providers/iteration.ts.
      const nextBlock = async (): Promise<PcmBlock | null> => {
        let entry: Awaited<ReturnType<typeof audio.next>>;
        try {
          entry = await audio.next(request.signal);
        } catch (error) {
          throw new ProviderError('provider_unavailable', (error as Error).message);
        }
        if (!entry) return null; // aborted
        const fields = fieldsOf(entry[1]);
        if (fields.get('k')?.toString() === 'a') {
          const bytes = fields.get('p') ?? Buffer.alloc(0);
          // Copied into an aligned array: a Buffer may start at an odd offset of its pool.
          const samples = new Int16Array(bytes.byteLength >> 1);
          Buffer.from(samples.buffer).set(bytes.subarray(0, samples.byteLength));
          return { samples, sampleRate: Number(fields.get('r')?.toString() ?? '0') };
        }
        ended = true;
        if (fields.get('s')?.toString() === 'failed') {
          const code = (fields.get('c')?.toString() || 'provider_unavailable') as ErrorCode;
          throw new ProviderError(code, fields.get('m')?.toString() || 'the synthesis worker failed');
        }
        return null;
      };
      let block = await nextBlock();
      while (block) {
        yield block;
        block = null;
        block = await nextBlock();
      }
    } finally {
      audio.close();
      // Our end first, then the worker's writes are refused: STOP stays local and final.
      if (queued && !ended) await this.jobs.cancel(jobId, request.job?.fence).catch(() => false);
    }
  }

  private connecting: Promise<void> | null = null;

  /** The writer's connection, made once (again after it ended); ioredis reconnects it meanwhile. */
  private connected(): Promise<void> {
    const writer = this.jobs.redis;
    if (writer.status === 'ready') return Promise.resolve();
    if (writer.status === 'wait' || writer.status === 'end') {
      this.connecting = writer.connect().finally(() => (this.connecting = null));
    }
    if (this.connecting) return this.connecting;
    // Reconnecting (Redis restarted or away a moment): wait for it, within a deadline.
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        writer.off('ready', onReady);
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => done();
      const timer = setTimeout(() => done(new Error(`the connection is ${writer.status}`)), 3_000);
      writer.once('ready', onReady);
    });
  }

  /** The workers' consumer group exists from the start: jobs queued before any worker ran wait for one. */
  ready = () =>
    this.connected()
      .then(() => this.jobs.ensureGroup(this.name))
      .catch(() => {});
  isReady = () => true;
  close = () => {
    this.streams.close();
    this.jobs.redis.disconnect();
    return Promise.resolve();
  };
}

export interface SynthWorkerOptions extends JobKeys {
  /** Jobs synthesized at once by this worker (default 2). */
  concurrency?: number;
  /** A job whose claim was not refreshed for this long belongs to a dead worker (default 5 s). */
  claimIdleMs?: number;
  /** This worker's consumer name (default: random). */
  consumer?: string;
}

/** The worker side: takes the jobs of `provider` from its stream and writes their audio. */
export class SynthWorker {
  private readonly jobs: Jobs;
  private readonly concurrency: number;
  private readonly claimIdleMs: number;
  readonly consumer: string;
  /** Stream entry id → the job's abort controller. */
  private readonly running = new Map<string, AbortController>();
  private readonly timers: Array<ReturnType<typeof setInterval>> = [];
  private reader: Redis | null = null;
  private stopping = false;
  private cutShort = false;
  private readerId: number | null = null;
  private loop: Promise<void> | null = null;
  readonly counters = { done: 0, failed: 0, cancelled: 0, reclaimed: 0 };

  constructor(
    redis: Redis,
    private readonly provider: TtsProvider,
    options: SynthWorkerOptions = {},
  ) {
    // A connection of its own for the job writes: a deadline that suits a busy worker, and no
    // waiting behind other traffic of the process.
    this.jobs = new Jobs(redis.duplicate({ commandTimeout: 5_000, lazyConnect: true }), options);
    this.concurrency = options.concurrency ?? 2;
    this.claimIdleMs = options.claimIdleMs ?? 5_000;
    this.consumer = options.consumer ?? randomUUID();
  }

  private get queue(): string {
    return this.jobs.queue(this.provider.name);
  }

  async start(): Promise<void> {
    this.jobs.redis.on('error', () => {});
    await this.jobs.redis.connect();
    await this.jobs.ensureGroup(this.provider.name);
    this.reader = this.jobs.redis.duplicate({ commandTimeout: 5_000, lazyConnect: true });
    this.reader.on('error', () => {});
    await this.reader.connect();
    this.readerId = Number(await this.reader.client('ID'));
    // Three refreshes per claim period: our running jobs never look idle to another worker.
    this.timers.push(setInterval(() => void this.refreshClaims(), Math.max(50, Math.floor(this.claimIdleMs / 3))));
    this.timers.push(setInterval(() => void this.reclaimDead(), Math.max(100, Math.floor(this.claimIdleMs / 2))));
    for (const t of this.timers) t.unref();
    this.loop = this.readJobs();
  }

  get providerName(): string {
    return this.provider.name;
  }

  /** Jobs running now. */
  get runningJobs(): number {
    return this.running.size;
  }

  /**
   * Stop taking jobs: a blocked read is woken (CLIENT UNBLOCK, which delivers nothing) and the
   * read loop ends. Entries a read already took are run: they are this worker's to finish.
   */
  async stopTaking(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      if (this.readerId !== null) await this.jobs.redis.client('UNBLOCK', this.readerId).catch(() => 0);
    }
    await this.loop?.catch(() => {});
  }

  /** Stop taking jobs; the running ones finish (bounded by `timeoutMs`, then they end failed). */
  async stop(timeoutMs = 10_000): Promise<void> {
    await this.stopTaking();
    const deadline = Date.now() + timeoutMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Cut short, a job ends failed: ended as cancelled, its utterance would pass for complete.
    this.cutShort = true;
    for (const controller of this.running.values()) controller.abort();
    while (this.running.size > 0 && Date.now() < deadline + 2_000) await new Promise((r) => setTimeout(r, 20));
    for (const t of this.timers) clearInterval(t);
    this.reader?.disconnect();
    this.jobs.redis.disconnect();
  }

  /** The job stream's consumer group, from `from` on ('$': jobs added from now; '0': every job kept). */
  private async readJobs(): Promise<void> {
    while (!this.stopping) {
      const free = this.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      let reply: Array<[string, Array<[string, string[]]>]> | null;
      try {
        reply = (await this.reader!.xreadgroup('GROUP', group, this.consumer, 'COUNT', free, 'BLOCK', 1_000, 'STREAMS', this.queue, '>')) as typeof reply;
      } catch (error) {
        if (this.stopping) return;
        // Redis restarted empty: the job stream and its group went with it. Made again from the
        // stream's start, so the jobs gateways queued since the restart are taken too.
        if (/NOGROUP/.test((error as Error).message)) await this.jobs.ensureGroup(this.provider.name, '0').catch(() => {});
        await new Promise((r) => setTimeout(r, 200)); // Redis away: try again shortly
        continue;
      }
      for (const [, entries] of reply ?? []) for (const [entryId, fields] of entries) this.run(entryId, fields);
    }
  }

  private run(entryId: string, raw: string[]): void {
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i]!, raw[i + 1]!);
    const jobId = fields.get('job') ?? '';
    const controller = new AbortController();
    this.running.set(entryId, controller);
    void (async () => {
      let status: JobStatus = 'done';
      let code = '';
      let message = '';
      try {
        const blocks = this.provider.synthesize({ text: fields.get('text') ?? '', voice: fields.get('voice') ?? '', signal: controller.signal })[Symbol.asyncIterator]();
        try {
          // Not `for await`: a block written is let go of before the wait for the next (../providers/iteration.ts).
          let block = await nextItem(blocks);
          while (block) {
            const appending = this.jobs.append(jobId, block);
            block = null;
            // Refused: the gateway ended the job (STOP, timeout) or another worker did.
            if (!(await appending)) {
              status = 'cancelled';
              controller.abort();
              break;
            }
            block = await nextItem(blocks);
          }
        } finally {
          await blocks.return?.();
        }
        if (controller.signal.aborted && status === 'done') {
          if (this.cutShort) throw new ProviderError('provider_unavailable', 'the synthesis worker stopped before the job finished');
          status = 'cancelled';
        }
      } catch (error) {
        status = 'failed';
        code = error instanceof ProviderError ? error.code : 'provider_unavailable';
        message = error instanceof Error ? error.message.slice(0, 200) : 'synthesis failed';
      }
      try {
        await this.jobs.end(jobId, status, code, message);
        // Acknowledged only once its end is recorded; then it leaves the stream.
        await this.jobs.redis.xack(this.queue, group, entryId);
        await this.jobs.redis.xdel(this.queue, entryId);
      } catch {
        // Redis away: the entry stays pending; if this worker lives it is refreshed, else reclaimed.
      }
      this.counters[status]++;
      this.running.delete(entryId);
    })();
  }

  private async refreshClaims(): Promise<void> {
    const ids = [...this.running.keys()];
    if (ids.length === 0) return;
    await this.jobs.redis.xclaim(this.queue, group, this.consumer, 0, ...ids, 'JUSTID').catch(() => {});
  }

  /** Jobs of dead workers: each ends failed (provider_unavailable) once, then is acknowledged. */
  private async reclaimDead(): Promise<void> {
    if (this.stopping) return;
    let cursor = '0-0';
    for (let round = 0; round < 10; round++) {
      let reply: [string, string[], string[]?];
      try {
        reply = (await this.jobs.redis.xautoclaim(this.queue, group, this.consumer, this.claimIdleMs, cursor, 'COUNT', 100, 'JUSTID')) as typeof reply;
      } catch {
        return;
      }
      const [next, claimed] = reply;
      for (const entryId of claimed) {
        if (this.running.has(entryId)) continue; // ours (a refresh was late): never end our own job
        try {
          const [entry] = (await this.jobs.redis.xrange(this.queue, entryId, entryId)) as Array<[string, string[]]>;
          const jobId = entry ? (entry[1][entry[1].indexOf('job') + 1] ?? '') : '';
          if (jobId && (await this.jobs.end(jobId, 'failed', 'provider_unavailable', 'the synthesis worker died'))) this.counters.reclaimed++;
          await this.jobs.redis.xack(this.queue, group, entryId);
          await this.jobs.redis.xdel(this.queue, entryId);
        } catch {
          return; // Redis away: the next round tries again
        }
      }
      if (next === '0-0') return;
      cursor = next;
    }
  }
}
