// A pool of pre-warmed eSpeak NG child processes. The pool owns the processes; a job owns
// its worker from acquire until the worker reported the job finished (or died), so a
// worker is never shared by two jobs. Crashed or hung workers are replaced.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import { ProviderError, type PcmBlock } from '../types.js';
import { BlockQueue } from '../blockQueue.js';

const KIND_READY = 1;
const KIND_AUDIO = 2;
const KIND_DONE = 3;
const KIND_ERROR = 4;
const HEADER = 9;

export interface WorkerPoolOptions {
  size: number;
  /** A job with no output for this long is declared hung: its worker is killed and replaced. */
  jobStallMs: number;
  /** A worker that is not warm after this long is killed and replaced. */
  startTimeoutMs: number;
  workerPath?: string;
}

export const defaultWorkerPoolOptions: WorkerPoolOptions = { size: 2, jobStallMs: 5_000, startTimeoutMs: 15_000 };

type Proc = ChildProcessByStdio<Writable, Readable, Readable>;

interface Job {
  id: number;
  audio: BlockQueue<PcmBlock>;
  settled: Promise<void>;
  settle: () => void;
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
}

export interface WorkerPoolStats {
  size: number;
  warm: number;
  busy: number;
  waiting: number;
  restarts: number;
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
  private readonly waiters: Array<{ resolve: (w: Worker) => void; reject: (e: Error) => void; signal: AbortSignal; onAbort: () => void }> = [];
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
    };
  }

  /** Process ids of the live workers (tests use them to inject crashes and hangs). */
  pids(): number[] {
    return [...this.workers].filter((w) => !w.dead).map((w) => w.pid);
  }

  /** Synthesize one piece. The worker is held until it reported the job over, even if the caller stops early. */
  async *synthesize(text: string, voice: string, signal: AbortSignal): AsyncGenerator<PcmBlock> {
    const worker = await this.acquire(signal);
    const job = this.beginJob(worker, text, voice);
    const onAbort = () => job.audio.wake();
    signal.addEventListener('abort', onAbort);
    try {
      yield* job.audio.drain(() => signal.aborted);
    } finally {
      signal.removeEventListener('abort', onAbort);
      // The worker finishes the piece it is on (tens of ms) or is killed by the stall watchdog.
      await job.settled;
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

  private acquire(signal: AbortSignal): Promise<Worker> {
    if (this.closed) return Promise.reject(new ProviderError('provider_unavailable', 'the embedded voice is shut down'));
    if (signal.aborted) return Promise.reject(new ProviderError('provider_unavailable', 'aborted'));
    const free = this.idle.shift();
    if (free) return Promise.resolve(free);
    return new Promise<Worker>((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new ProviderError('provider_unavailable', 'aborted while waiting for a synth worker'));
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private release(worker: Worker): void {
    if (worker.dead || this.closed) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.signal.removeEventListener('abort', waiter.onAbort);
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
    const job: Job = { id: this.nextJobId++, audio: new BlockQueue<PcmBlock>(), settled, settle };
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
    job.audio.finish(error);
    job.settle();
    this.release(worker);
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
        this.armStallTimer(worker);
        const samples = new Int16Array(payload.byteLength / 2);
        Buffer.from(samples.buffer).set(payload.subarray(0, samples.byteLength));
        job.audio.push({ samples, sampleRate: worker.sampleRate });
      } else if (kind === KIND_DONE) {
        this.finishJob(worker, null);
      } else if (kind === KIND_ERROR) {
        let message = 'synthesis failed';
        try {
          message = (JSON.parse(payload.toString('utf8')) as { message: string }).message;
        } catch {
          /* keep the generic message */
        }
        this.finishJob(worker, new ProviderError('provider_unavailable', message));
      }
    }
  }
}
