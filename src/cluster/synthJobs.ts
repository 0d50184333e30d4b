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
import { ProviderError, type PcmBlock, type SynthesisRequest, type TtsProvider } from '../providers/types.js';
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
// The end is recorded once (1); every later attempt is a no-op (0).
const endScript = `
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'k', 'end', 's', ARGV[2], 'c', ARGV[3], 'm', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
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
  async append(jobId: string, block: PcmBlock): Promise<boolean> {
    const pcm = Buffer.from(block.samples.buffer, block.samples.byteOffset, block.samples.byteLength);
    return (await this.redis.eval(appendScript, 2, this.stream(jobId), this.ended(jobId), this.ttlMs, block.sampleRate, pcm)) === 1;
  }
  async end(jobId: string, status: JobStatus, code = '', message = ''): Promise<boolean> {
    return (await this.redis.eval(endScript, 2, this.stream(jobId), this.ended(jobId), this.ttlMs, status, code, message)) === 1;
  }
}

/** Field pairs of a stream entry as a map (names as text). */
function fieldsOf(raw: Buffer[]): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i]!.toString(), raw[i + 1]!);
  return fields;
}

/** The gateway side: a provider whose every piece is a job for the workers of `name`. */
export class RedisJobProvider implements TtsProvider {
  private readonly jobs: Jobs;

  constructor(
    redis: Redis,
    readonly name: string,
    readonly voices: VoiceInfo[],
    readonly maxPieceChars: number,
    options: JobKeys & { maxQueuedJobs?: number } = {},
  ) {
    this.jobs = new Jobs(redis, options);
    this.maxQueuedJobs = options.maxQueuedJobs ?? 100_000;
  }
  private readonly maxQueuedJobs: number;

  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    const jobId = randomUUID();
    const stream = this.jobs.stream(jobId);
    // Blocking reads need a connection of their own; an abort cuts it, so a STOP never waits on it.
    const reader = this.jobs.redis.duplicate({ commandTimeout: 5_000, lazyConnect: true });
    reader.on('error', () => {});
    const cut = () => reader.disconnect();
    request.signal.addEventListener('abort', cut, { once: true });
    let ended = false;
    try {
      try {
        await reader.connect();
      } catch (error) {
        if (request.signal.aborted) return;
        throw new ProviderError('provider_unavailable', `the synthesis queue cannot be reached (${(error as Error).message})`);
      }
      try {
        // On the job's own connection, whose deadline suits a busy gateway (the shared one's is short).
        await reader.xadd(this.jobs.queue(this.name), 'MAXLEN', '~', this.maxQueuedJobs, '*', 'job', jobId, 'voice', request.voice, 'text', request.text);
      } catch (error) {
        throw new ProviderError('provider_unavailable', `the synthesis queue cannot be reached (${(error as Error).message})`);
      }
      let last = '0-0';
      while (!request.signal.aborted) {
        let reply: Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;
        try {
          reply = (await reader.xreadBuffer('COUNT', 64, 'BLOCK', 1_000, 'STREAMS', stream, last)) as typeof reply;
        } catch {
          if (request.signal.aborted) return;
          // Slow or away: read again. The utterance's own timers (first audio, chunk gap) bound the wait.
          await new Promise((r) => setTimeout(r, 100));
          if (reader.status === 'end') await reader.connect().catch(() => {});
          continue;
        }
        for (const [, entries] of reply ?? []) {
          for (const [id, raw] of entries) {
            last = id.toString();
            const fields = fieldsOf(raw);
            if (fields.get('k')?.toString() === 'a') {
              const bytes = fields.get('p') ?? Buffer.alloc(0);
              // Copied into an aligned array: a Buffer may start at an odd offset of its pool.
              const samples = new Int16Array(bytes.byteLength >> 1);
              Buffer.from(samples.buffer).set(bytes.subarray(0, samples.byteLength));
              yield { samples, sampleRate: Number(fields.get('r')?.toString() ?? '0') };
              continue;
            }
            ended = true;
            const status = fields.get('s')?.toString();
            if (status === 'failed') {
              const code = (fields.get('c')?.toString() || 'provider_unavailable') as ErrorCode;
              throw new ProviderError(code, fields.get('m')?.toString() || 'the synthesis worker failed');
            }
            return;
          }
        }
      }
    } finally {
      request.signal.removeEventListener('abort', cut);
      // Our end first, then the worker's writes are refused: STOP stays local and final.
      if (!ended) await this.jobs.end(jobId, 'cancelled').catch(() => false);
      reader.disconnect();
    }
  }

  ready = () => Promise.resolve();
  isReady = () => true;
  close = () => Promise.resolve();
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
    await this.createGroup('$');
    this.reader = this.jobs.redis.duplicate({ commandTimeout: 5_000, lazyConnect: true });
    this.reader.on('error', () => {});
    await this.reader.connect();
    // Three refreshes per claim period: our running jobs never look idle to another worker.
    this.timers.push(setInterval(() => void this.refreshClaims(), Math.max(50, Math.floor(this.claimIdleMs / 3))));
    this.timers.push(setInterval(() => void this.reclaimDead(), Math.max(100, Math.floor(this.claimIdleMs / 2))));
    for (const t of this.timers) t.unref();
    this.loop = this.readJobs();
  }

  /** Stop taking jobs; the running ones finish (bounded by `timeoutMs`, then they are failed). */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.stopping = true;
    const deadline = Date.now() + timeoutMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const controller of this.running.values()) controller.abort();
    for (const t of this.timers) clearInterval(t);
    this.reader?.disconnect();
    await this.loop?.catch(() => {});
    this.jobs.redis.disconnect();
  }

  /** The job stream's consumer group, from `from` on ('$': jobs added from now; '0': every job kept). */
  private async createGroup(from: '$' | '0'): Promise<void> {
    try {
      await this.jobs.redis.xgroup('CREATE', this.queue, group, from, 'MKSTREAM');
    } catch (error) {
      if (!/BUSYGROUP/.test((error as Error).message)) throw error;
    }
  }

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
        if (/NOGROUP/.test((error as Error).message)) await this.createGroup('0').catch(() => {});
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
        for await (const block of this.provider.synthesize({ text: fields.get('text') ?? '', voice: fields.get('voice') ?? '', signal: controller.signal })) {
          // Refused: the gateway ended the job (STOP, timeout) or another worker did.
          if (!(await this.jobs.append(jobId, block))) {
            status = 'cancelled';
            controller.abort();
            break;
          }
        }
        if (controller.signal.aborted && status === 'done') status = 'cancelled';
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
