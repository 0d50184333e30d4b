// A pool of pre-warmed eSpeak NG child processes. The pool owns the processes; a job owns
// its worker from acquire until the worker reported the job finished (or died), so a
// worker is never shared by two jobs. Crashed or hung workers are replaced.
//
// Memory: a job's audio waits in a queue bounded in bytes. Past the bound the pool stops
// reading that worker's stdout until the consumer took the queue back to half, so a consumer
// that stops pulling (its client stopped reading) stops its producer instead of piling audio
// up in the server. The worker then holds what it still writes in its own process (Node's
// pipe writes are asynchronous), which is bounded by the piece's audio; the worker stays
// this job's until the job is consumed or abandoned. A worker held back longer than
// `maxHeldMs` while other requests wait is taken back: the job keeps what it queued, then
// fails with `client_stalled`, so a client that stops reading never keeps a worker from others.
//
// Load: requests wait for a worker in arrival order. A request that starts an utterance is
// refused at once (`provider_busy`, with a retry-after estimate) when too many already wait;
// one that continues an utterance whose audio started always waits its turn, and says so
// (`onQueued`) so the session does not take the wait for a stalled upstream.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { ProviderError, type PcmBlock } from '../types.js';
import { BlockQueue } from '../blockQueue.js';
import { nextItem } from '../iteration.js';

const KIND_READY = 1;
const KIND_AUDIO = 2;
const KIND_DONE = 3;
const KIND_ERROR = 4;
const HEADER = 9;

export interface WorkerPoolOptions {
  size: number;
  /**
   * Bytes of audio one job may hold in the server before its worker's output stops being read
   * (1 MiB: about 24 s of speech, more than a whole prose piece, so a piece the consumer has
   * stopped pulling usually finishes and frees its worker anyway).
   */
  maxJobBufferBytes: number;
  /** Requests that start an utterance are refused while this many requests per worker already wait. */
  maxWaitingPerWorker: number;
  /** A worker held back for a job that is not consumed is taken back after this long if others wait for one. */
  maxHeldMs: number;
  /** A job with no output for this long is declared hung: its worker is killed and replaced. */
  jobStallMs: number;
  /** A worker that is not warm after this long is killed and replaced. */
  startTimeoutMs: number;
  workerPath?: string;
}

export const defaultWorkerPoolOptions: WorkerPoolOptions = {
  size: 2,
  maxJobBufferBytes: 1024 * 1024,
  maxWaitingPerWorker: 16,
  maxHeldMs: 2_000,
  jobStallMs: 5_000,
  startTimeoutMs: 15_000,
};

/** How one request joins the queue for a worker. */
export interface JobRequestOptions {
  /** The request continues an utterance whose audio started: it is never refused for load. */
  continuation?: boolean;
  /** Called with true when the request has to wait for a worker, with false once it has one. */
  onQueued?: (queued: boolean) => void;
}

type Proc = ChildProcessByStdio<Writable, Readable, Readable>;

interface Job {
  id: number;
  audio: BlockQueue<PcmBlock>;
  settled: Promise<void>;
  settle: () => void;
  /** The consumer left: what the worker still makes for this job is dropped. */
  abandoned: boolean;
  startedAt: number;
  /** Its worker's output was held back at some point (its duration says nothing about the work). */
  wasHeld: boolean;
}

interface Worker {
  proc: Proc;
  pid: number;
  warm: boolean;
  dead: boolean;
  sampleRate: number;
  job: Job | null;
  stallTimer: NodeJS.Timeout | null;
  buffer: Buffer;
  /** Its stdout is paused because its job's queue is full. */
  held: boolean;
  /** Runs while held; once it fired, the worker is taken back as soon as another request waits. */
  holdTimer: NodeJS.Timeout | null;
  heldTooLong: boolean;
}

export interface WorkerPoolStats {
  size: number;
  warm: number;
  busy: number;
  waiting: number;
  restarts: number;
  /** Audio bytes queued in the server for jobs and not yet taken by their consumers. */
  bufferedBytes: number;
  /** Requests refused with `provider_busy` because too many were waiting. */
  refusedBusy: number;
}

interface Waiter {
  resolve: (w: Worker) => void;
  reject: (e: Error) => void;
  signal: AbortSignal;
  onAbort: () => void;
  onQueued: ((queued: boolean) => void) | undefined;
}

export function defaultWorkerPath(): string {
  // Next to this module in the sources; the build copies it next to the compiled module too.
  const here = fileURLToPath(new URL('./espeakWorker.mjs', import.meta.url));
  if (existsSync(here)) return here;
  return fileURLToPath(new URL('../../../../src/providers/espeak/espeakWorker.mjs', import.meta.url));
}

export class EspeakWorkerPool {
  private readonly options: WorkerPoolOptions;
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly waiters: Waiter[] = [];
  /** Jobs whose consumer has not let go yet (their queues are the pool's share of memory). */
  private readonly jobs = new Set<Job>();
  private refusedBusy = 0;
  /** Running estimate of one job's time on a worker, for the retry-after of a refusal. */
  private jobMsEstimate = 100;
  private nextJobId = 1;
  private restarts = 0;
  private closed = false;
  private readyPromise: Promise<void> | null = null;
  private consecutiveStartFailures = 0;
  private lastStartError = '';
  private readyListeners: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(options: Partial<WorkerPoolOptions> = {}) {
    this.options = { ...defaultWorkerPoolOptions, ...options };
  }

  /** Spawn the workers and resolve once every one is warm. */
  start(): Promise<void> {
    if (!this.readyPromise) {
      this.readyPromise = new Promise<void>((resolve, reject) => {
        this.readyListeners.push({ resolve, reject });
      });
      for (let i = 0; i < this.options.size; i++) this.spawnWorker();
    }
    return this.readyPromise;
  }

  isReady(): boolean {
    return !this.closed && [...this.workers].filter((w) => w.warm).length === this.options.size;
  }

  stats(): WorkerPoolStats {
    const all = [...this.workers];
    return {
      size: all.length,
      warm: all.filter((w) => w.warm).length,
      busy: all.filter((w) => w.job !== null).length,
      waiting: this.waiters.length,
      restarts: this.restarts,
      bufferedBytes: [...this.jobs].reduce((sum, job) => sum + job.audio.bytes, 0),
      refusedBusy: this.refusedBusy,
    };
  }

  /** Process ids of the live workers (tests use them to inject crashes and hangs). */
  pids(): number[] {
    return [...this.workers].filter((w) => !w.dead).map((w) => w.pid);
  }

  /** Synthesize one piece. The worker is held until it reported the job over, even if the caller stops early. */
  async *synthesize(text: string, voice: string, signal: AbortSignal, request: JobRequestOptions = {}): AsyncGenerator<PcmBlock> {
    const worker = await this.acquire(signal, request);
    const job = this.beginJob(worker, text, voice);
    const onAbort = () => job.audio.wake();
    signal.addEventListener('abort', onAbort);
    const audio = job.audio.drain(() => signal.aborted);
    try {
      // Not `yield*`: see ../iteration.ts.
      let block = await nextItem(audio);
      while (block) {
        yield block;
        block = null;
        block = await nextItem(audio);
      }
    } finally {
      await audio.return(undefined);
      signal.removeEventListener('abort', onAbort);
      // Nobody takes the rest: drop it, and let a worker held back for this job go on. It
      // finishes the piece it is on (tens of ms) or is killed by the stall watchdog.
      job.abandoned = true;
      job.audio.clear();
      await job.settled;
      this.jobs.delete(job);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(new ProviderError('provider_unavailable', 'the embedded voice is shutting down'));
    }
    for (const l of this.readyListeners.splice(0)) l.reject(new Error('worker pool closed before it was ready'));
    const exits = [...this.workers].map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.dead) return resolve();
          w.proc.once('exit', () => resolve());
          w.proc.kill('SIGKILL');
        }),
    );
    await Promise.all(exits);
  }

  private acquire(signal: AbortSignal, request: JobRequestOptions): Promise<Worker> {
    if (this.closed) return Promise.reject(new ProviderError('provider_unavailable', 'the embedded voice is shut down'));
    if (signal.aborted) return Promise.reject(new ProviderError('provider_unavailable', 'aborted'));
    const free = this.idle.shift();
    if (free) return Promise.resolve(free);
    const maxWaiting = this.options.maxWaitingPerWorker * this.options.size;
    if (!request.continuation && this.waiters.length >= maxWaiting) {
      // Refused now rather than left to time out in the queue; started utterances keep their turns.
      this.refusedBusy++;
      const retryAfterMs = Math.max(100, Math.ceil((this.waiters.length / this.options.size) * this.jobMsEstimate));
      return Promise.reject(
        new ProviderError('provider_busy', `every synth worker is busy and ${this.waiters.length} requests are waiting`, retryAfterMs),
      );
    }
    return new Promise<Worker>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onQueued: request.onQueued,
        onAbort: () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new ProviderError('provider_unavailable', 'aborted while waiting for a synth worker'));
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
      request.onQueued?.(true);
      this.takeBackHeldWorkers();
    });
  }

  private release(worker: Worker): void {
    if (worker.dead || this.closed) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.onQueued?.(false);
      waiter.resolve(worker);
    } else {
      this.idle.push(worker);
    }
  }

  private beginJob(worker: Worker, text: string, voice: string): Job {
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const job: Job = {
      id: this.nextJobId++,
      audio: new BlockQueue<PcmBlock>({
        sizeOf: (block) => block.samples.byteLength,
        maxBytes: this.options.maxJobBufferBytes,
        onDrained: () => {
          if (worker.job === job) this.readOn(worker);
        },
      }),
      settled,
      settle,
      abandoned: false,
      startedAt: performance.now(),
      wasHeld: false,
    };
    this.jobs.add(job);
    worker.job = job;
    this.armStallTimer(worker);
    worker.proc.stdin.write(`${JSON.stringify({ op: 'synth', job: job.id, text, voice })}\n`);
    return job;
  }

  private finishJob(worker: Worker, error: ProviderError | null): void {
    const job = worker.job;
    if (!job) return;
    worker.job = null;
    if (worker.stallTimer) clearTimeout(worker.stallTimer);
    worker.stallTimer = null;
    // All of the job's output is read; its queue holds the rest, and the worker can take the next job.
    if (worker.held) {
      this.endHold(worker);
      if (!worker.dead) worker.proc.stdout.resume();
    }
    if (!error && !job.wasHeld) this.jobMsEstimate += (performance.now() - job.startedAt - this.jobMsEstimate) * 0.1;
    job.audio.finish(error);
    job.settle();
    this.release(worker);
  }

  /** The job's queue is full: stop reading the worker (its pipe fills, its writes wait in its own process). */
  private holdBack(worker: Worker, job: Job): void {
    if (worker.held || worker.dead) return;
    worker.held = true;
    job.wasHeld = true;
    // Not hung, held: the stall watchdog waits until the worker's output is read again.
    if (worker.stallTimer) clearTimeout(worker.stallTimer);
    worker.stallTimer = null;
    worker.proc.stdout.pause();
    worker.holdTimer = setTimeout(() => {
      worker.holdTimer = null;
      worker.heldTooLong = true;
      this.takeBackHeldWorkers();
    }, this.options.maxHeldMs);
  }

  /** The job's queue drained (or was dropped): read the worker again. */
  private readOn(worker: Worker): void {
    if (!worker.held || worker.dead) return;
    this.endHold(worker);
    this.armStallTimer(worker);
    worker.proc.stdout.resume();
  }

  private endHold(worker: Worker): void {
    worker.held = false;
    worker.heldTooLong = false;
    if (worker.holdTimer) clearTimeout(worker.holdTimer);
    worker.holdTimer = null;
  }

  /**
   * Others wait: workers held too long for jobs nobody consumes go back to work. The job keeps
   * what it queued and then fails; the rest of its output is dropped as the worker finishes it.
   */
  private takeBackHeldWorkers(): void {
    if (this.waiters.length === 0) return;
    for (const worker of this.workers) {
      const job = worker.job;
      if (!worker.heldTooLong || !job) continue;
      job.abandoned = true;
      job.audio.finish(
        new ProviderError('client_stalled', 'the client stopped reading while its synthesis held a worker others were waiting for'),
      );
      this.readOn(worker);
    }
  }

  private armStallTimer(worker: Worker): void {
    if (worker.stallTimer) clearTimeout(worker.stallTimer);
    worker.stallTimer = setTimeout(() => {
      worker.stallTimer = null;
      // Hung: kill it; the exit handler fails the job and spawns a replacement.
      worker.proc.kill('SIGKILL');
    }, this.options.jobStallMs);
  }

  private spawnWorker(): void {
    if (this.closed) return;
    const proc = spawn(process.execPath, [this.options.workerPath ?? defaultWorkerPath()], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }) as Proc;
    const worker: Worker = {
      proc,
      pid: proc.pid ?? -1,
      warm: false,
      dead: false,
      sampleRate: 22_050,
      job: null,
      stallTimer: null,
      buffer: Buffer.alloc(0),
      held: false,
      holdTimer: null,
      heldTooLong: false,
    };
    this.workers.add(worker);
    const startTimer = setTimeout(() => proc.kill('SIGKILL'), this.options.startTimeoutMs);
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-2000);
    });
    proc.stdin.on('error', () => {}); // a dead worker's pipe: the exit handler deals with it
    proc.stdout.on('data', (data: Buffer) => {
      worker.buffer = worker.buffer.length === 0 ? data : Buffer.concat([worker.buffer, data]);
      this.drainFrames(worker, startTimer);
    });
    proc.on('error', () => {}); // spawn failure is followed by 'exit' / 'close'
    proc.once('exit', (code, sig) => {
      clearTimeout(startTimer);
      this.endHold(worker);
      worker.dead = true;
      this.workers.delete(worker);
      const i = this.idle.indexOf(worker);
      if (i >= 0) this.idle.splice(i, 1);
      const wasWarm = worker.warm;
      this.finishJob(worker, new ProviderError('provider_unavailable', `synth worker exited (${sig ?? code})`));
      if (this.closed) return;
      if (!wasWarm) {
        this.consecutiveStartFailures++;
        this.lastStartError = stderr.trim() || `exit ${sig ?? code}`;
        if (this.consecutiveStartFailures >= 3 * this.options.size) {
          for (const l of this.readyListeners.splice(0)) {
            l.reject(new Error(`the embedded voice cannot start: ${this.lastStartError}`));
          }
          return;
        }
      }
      this.restarts++;
      // Back off a little when workers keep dying before they are warm.
      const delay = wasWarm ? 0 : Math.min(2_000, 100 * this.consecutiveStartFailures);
      setTimeout(() => this.spawnWorker(), delay).unref();
    });
  }

  private drainFrames(worker: Worker, startTimer: NodeJS.Timeout): void {
    while (worker.buffer.length >= HEADER) {
      const length = worker.buffer.readUInt32LE(0);
      if (worker.buffer.length < HEADER + length) return;
      const kind = worker.buffer.readUInt8(4);
      const jobId = worker.buffer.readUInt32LE(5);
      const payload = worker.buffer.subarray(HEADER, HEADER + length);
      worker.buffer = worker.buffer.subarray(HEADER + length);
      if (kind === KIND_READY) {
        clearTimeout(startTimer);
        try {
          worker.sampleRate = (JSON.parse(payload.toString('utf8')) as { sampleRate: number }).sampleRate;
        } catch {
          /* keep the default rate */
        }
        worker.warm = true;
        this.consecutiveStartFailures = 0;
        this.release(worker);
        if (this.isReady()) for (const l of this.readyListeners.splice(0)) l.resolve();
        continue;
      }
      const job = worker.job;
      if (!job || job.id !== jobId) continue; // output of a job nobody waits for any more
      if (kind === KIND_AUDIO) {
        if (!worker.held) this.armStallTimer(worker);
        if (job.abandoned) continue; // nobody takes it; the worker is read on until it reports the job done
        const samples = new Int16Array(payload.byteLength / 2);
        Buffer.from(samples.buffer).set(payload.subarray(0, samples.byteLength));
        if (!job.audio.push({ samples, sampleRate: worker.sampleRate })) this.holdBack(worker, job);
      } else if (kind === KIND_DONE) {
        this.finishJob(worker, null);
      } else if (kind === KIND_ERROR) {
        let message = 'synthesis failed';
        let code: 'provider_unavailable' | 'provider_rejected' = 'provider_unavailable';
        try {
          const reported = JSON.parse(payload.toString('utf8')) as { message: string; code?: string };
          message = reported.message;
          // The text's own fault (too much audio for its length): not a failing voice, so it must not feed the breaker.
          if (reported.code === 'provider_rejected') code = 'provider_rejected';
        } catch {
          /* keep the generic message */
        }
        this.finishJob(worker, new ProviderError(code, message));
      }
    }
  }
}
