// A gateway reads the audio of every synthesis job in flight through a few Redis connections,
// not one each: jobs are grouped in lanes of up to `streamsPerLane`, and a lane is one connection
// running one blocking XREAD over all its jobs' streams at once. A job added to a lane that is
// blocked wakes it (CLIENT UNBLOCK from another connection), so its first audio waits for no
// timeout. Each job keeps at most `maxBuffered` entries its consumer has not taken; past that it
// leaves the lane's reads until it is taken from (backpressure reaches the worker through the
// stream, which Redis holds), so a paused client costs the gateway no memory.
import type { Redis } from './redis.js';

type Entry = [id: Buffer, fields: Buffer[]];

export interface JobStreamsOptions {
  /** Job streams read by one connection (default 64). */
  streamsPerLane?: number;
  /** Entries a job holds for its consumer before its stream is left out of the reads (default 64). */
  maxBuffered?: number;
  /** Longest block of one read (default 1 000 ms): a lane with nothing new reads again after it. */
  blockMs?: number;
}

/** One job's stream, read from its start. */
export interface JobStream {
  /** The next entry; null once closed or aborted. Throws when the lane's connection cannot be made. */
  next(signal: AbortSignal): Promise<Entry | null>;
  /** Stop reading it. Idempotent. */
  close(): void;
}

class Watch implements JobStream {
  last = '0-0';
  readonly buffer: Entry[] = [];
  closed = false;
  private waiter: (() => void) | null = null;

  constructor(
    readonly key: string,
    private readonly lane: Lane,
  ) {}

  /** Whether the lane reads this stream now (it has room for more). */
  get reading(): boolean {
    return !this.closed && this.buffer.length < this.lane.maxBuffered;
  }

  deliver(entries: Entry[]): void {
    if (this.closed) return;
    for (const entry of entries) this.buffer.push(entry);
    this.wake();
  }

  wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  async next(signal: AbortSignal): Promise<Entry | null> {
    for (;;) {
      if (this.closed || signal.aborted) return null;
      const entry = this.buffer.shift();
      if (entry) {
        // It had left the reads while full: back in, now.
        if (this.buffer.length === this.lane.maxBuffered - 1) this.lane.poke();
        return entry;
      }
      if (this.lane.failure) throw this.lane.failure;
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', done);
          resolve();
        };
        this.waiter = done;
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer.length = 0;
    this.lane.remove(this);
    this.wake();
  }
}

class Lane {
  readonly watches = new Map<string, Watch>();
  private connection: Redis | null = null;
  private clientId: number | null = null;
  private blocked = false;
  private running = false;
  private closed = false;
  private wakeLoop: (() => void) | null = null;
  /** The connection could not be made: consumers hear it (and the lane tries again on its next job). */
  failure: Error | null = null;

  constructor(
    private readonly shared: Redis,
    readonly maxBuffered: number,
    private readonly blockMs: number,
  ) {}

  add(key: string): Watch {
    const watch = new Watch(key, this);
    this.watches.set(key, watch);
    this.poke();
    if (!this.running) void this.loop();
    return watch;
  }

  remove(watch: Watch): void {
    if (this.watches.get(watch.key) === watch) this.watches.delete(watch.key);
  }

  /** The set of streams to read changed: a blocked read returns at once and the next one has it. */
  poke(): void {
    const wake = this.wakeLoop;
    this.wakeLoop = null;
    wake?.();
    if (this.blocked && this.clientId !== null) this.shared.client('UNBLOCK', this.clientId).catch(() => {});
  }

  close(): void {
    this.closed = true;
    for (const watch of [...this.watches.values()]) watch.close();
    this.poke();
    this.connection?.disconnect();
  }

  private async connect(): Promise<Redis> {
    if (this.connection && this.connection.status === 'ready') return this.connection;
    this.connection?.disconnect();
    const connection = this.shared.duplicate({ commandTimeout: this.blockMs + 5_000, lazyConnect: true });
    connection.on('error', () => {});
    this.connection = connection;
    await connection.connect();
    this.clientId = Number(await connection.client('ID'));
    return connection;
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed) {
        const reading = [...this.watches.values()].filter((w) => w.reading);
        if (reading.length === 0) {
          await new Promise<void>((resolve) => (this.wakeLoop = resolve));
          continue;
        }
        let connection: Redis;
        try {
          connection = await this.connect();
          this.failure = null;
        } catch (error) {
          if (this.closed) return;
          // No connection: the jobs waiting on this lane fail (provider_unavailable), as a job
          // whose queue cannot be reached does; the lane tries again for its next job.
          this.failure = new Error(`the synthesis queue cannot be reached (${(error as Error).message})`);
          for (const watch of reading) watch.wake();
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        let reply: Array<[Buffer, Entry[]]> | null;
        try {
          this.blocked = true;
          reply = (await connection.xreadBuffer('COUNT', this.maxBuffered, 'BLOCK', this.blockMs, 'STREAMS', ...reading.map((w) => w.key), ...reading.map((w) => w.last))) as typeof reply;
        } catch {
          this.blocked = false;
          if (this.closed) return;
          // Slow or away: read again shortly. The utterances' own timers (first audio, chunk gap) bound the wait.
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        this.blocked = false;
        for (const [key, entries] of reply ?? []) {
          const watch = this.watches.get(key.toString());
          if (!watch || entries.length === 0) continue;
          watch.last = entries[entries.length - 1]![0].toString();
          watch.deliver(entries);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

/** Every job stream a gateway reads, over lanes of a few connections. */
export class JobStreams {
  private readonly lanes: Lane[] = [];
  private readonly streamsPerLane: number;
  private readonly maxBuffered: number;
  private readonly blockMs: number;

  constructor(
    private readonly shared: Redis,
    options: JobStreamsOptions = {},
  ) {
    this.streamsPerLane = options.streamsPerLane ?? 64;
    this.maxBuffered = options.maxBuffered ?? 64;
    this.blockMs = options.blockMs ?? 1_000;
  }

  /** Read `key` from its first entry. */
  open(key: string): JobStream {
    let lane = this.lanes.find((l) => l.watches.size < this.streamsPerLane);
    if (!lane) {
      lane = new Lane(this.shared, this.maxBuffered, this.blockMs);
      this.lanes.push(lane);
    }
    return lane.add(key);
  }

  /** Connections open for reading now (one per lane). */
  get connections(): number {
    return this.lanes.length;
  }

  close(): void {
    for (const lane of this.lanes) lane.close();
    this.lanes.length = 0;
  }
}
