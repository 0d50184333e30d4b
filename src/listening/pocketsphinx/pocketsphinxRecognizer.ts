// Offline speech-to-text with Debian's PocketSphinx, in a pool of worker processes.
//
// Ownership: the recognizer owns the processes; a job owns its process from the moment it is
// handed one until the job settles (final, error, cancel, deadline), and then gives it back
// at once. A job given up before its final leaves its process reset (a CANCEL ahead of
// anything the next job sends, on the same ordered pipe) or, when the process may be stuck
// (no final in time, a backlog past the bound), killed and replaced; so no turn's audio
// reaches another's decoder.
//
// Load: jobs wait for a process in arrival order; beyond `maxWaiting` a new job is refused
// (recognizer_busy). Memory: a job's audio waiting in this process (before it has a worker,
// or written and not yet taken by the worker's pipe) is bounded by `maxPendingAudioMs`, its
// whole turn by `maxJobAudioMs`; past either the job fails. Time: every job has a wall
// deadline from start() (`jobDeadlineMs`) and a deadline from finish() (`finishTimeoutMs`).
import { availableParallelism } from 'node:os';
import { RecognitionError, listenSampleRate, type RecognitionJob, type RecognitionRequest, type SpeechRecognizer } from '../types.js';
import { findPocketSphinx, type PocketSphinxLookup, type PocketSphinxPaths } from './install.js';
import { mapBack, maxPhrases, normalisePhrases, type PhraseSet } from './phrases.js';
import { SphinxProcess, defaultSphinxWorkerPath } from './sphinxProcess.js';

/** The part of a pino logger the recognizer uses. */
export interface RecognizerLog {
  debug(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
}

export interface PocketSphinxOptions {
  /** Worker processes (each holds one decoder, about 30 MB, and decodes one turn at a time). */
  size: number;
  /** Jobs that may wait for a process while every process is busy; the next is refused (recognizer_busy). */
  maxWaiting: number;
  /** Wall time from start() to the final transcript (waiting for a process included). */
  jobDeadlineMs: number;
  /** Wall time from finish() to the final transcript. */
  finishTimeoutMs: number;
  /** Audio a job may hold in this process before its worker takes it. */
  maxPendingAudioMs: number;
  /** Audio one job may carry in all (one turn). */
  maxJobAudioMs: number;
  /** A process that is not warm after this long is killed and replaced. */
  startTimeoutMs: number;
  /** Library and model locations (defaults: Debian's). */
  paths?: Partial<PocketSphinxPaths>;
  workerPath?: string;
  log?: RecognizerLog;
}

/**
 * A turn holds its process from the user's first word to the final transcript, so one process
 * hears one speaker at a time: one per core by default (a decoder uses about a core while it
 * runs), and a few turns per process may wait for one before new ones are refused.
 */
export const defaultPocketSphinxOptions: PocketSphinxOptions = {
  size: availableParallelism(),
  maxWaiting: 4 * availableParallelism(),
  jobDeadlineMs: 120_000,
  finishTimeoutMs: 10_000,
  maxPendingAudioMs: 60_000,
  maxJobAudioMs: 120_000,
  startTimeoutMs: 20_000,
};

export interface PocketSphinxStats {
  size: number;
  warm: number;
  busy: number;
  waiting: number;
  restarts: number;
  refusedBusy: number;
  /** CPU time of all worker processes so far (as they reported it at warm-up and after each final). */
  workerCpuMs: number;
  /** The last worker's time from spawn to warm (library, model, one warm-up utterance). */
  lastStartMs: number;
}

type JobState = 'waiting' | 'running' | 'finishing' | 'done';

interface Worker {
  proc: SphinxProcess;
  job: Job | null;
  /** Killed on purpose (stuck or backed up): replaced at once, not counted as a crash. */
  killed: boolean;
  /** It reached READY once (a death before that is a failure to start). */
  wasWarm: boolean;
  spawnedAt: number;
}

const samplesPerMs = listenSampleRate / 1000;

class Job implements RecognitionJob {
  state: JobState = 'waiting';
  worker: Worker | null = null;
  pending: Int16Array[] = [];
  pendingSamples = 0;
  totalSamples = 0;
  finishRequested = false;
  deadline: NodeJS.Timeout | null = null;
  finishTimer: NodeJS.Timeout | null = null;
  onAbort: (() => void) | null = null;
  readonly result: Promise<string>;
  resolve!: (text: string) => void;
  reject!: (error: RecognitionError) => void;

  constructor(
    private readonly host: PocketSphinxRecognizer,
    readonly id: number,
    readonly request: RecognitionRequest,
    public phrases: PhraseSet | null,
  ) {
    this.result = new Promise<string>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A job refused or cancelled before anyone awaits finish() must not be an unhandled rejection.
    this.result.catch(() => {});
  }

  write(pcm: Int16Array): void {
    this.host.jobWrite(this, pcm);
  }

  finish(): Promise<string> {
    this.host.jobFinish(this);
    return this.result;
  }

  cancel(): void {
    this.host.jobCancel(this);
  }
}

export class PocketSphinxRecognizer implements SpeechRecognizer {
  readonly name = 'pocketsphinx';
  readonly languages: readonly string[] = ['en'];
  readonly partials = true;
  /** With phrases it hears only them (a JSGF grammar); its general model is weak on synthetic voices. */
  readonly restrictsToPhrases = true;
  private readonly options: PocketSphinxOptions;
  private readonly install: PocketSphinxLookup;
  private readonly workers = new Set<Worker>();
  private readonly idle: Worker[] = [];
  private readonly waiting: Job[] = [];
  private readonly live = new Set<Job>();
  private started = false;
  private closed = false;
  /** Set when processes keep dying before they are warm: new jobs are refused as unavailable. */
  private broken: string | null = null;
  private readyPromise: Promise<void> | null = null;
  private readyListeners: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private nextJobId = 1;
  private restarts = 0;
  private crashes = 0;
  private startFailures = 0;
  private refusedBusy = 0;
  private retiredCpuUs = 0;
  private lastStartMs = Number.NaN;
  private closing: Promise<void> | null = null;

  constructor(options: Partial<PocketSphinxOptions> = {}) {
    this.options = { ...defaultPocketSphinxOptions, ...options };
    this.install = findPocketSphinx(this.options.paths);
  }

  /** Spawn the processes (once) and resolve when every one is warm. */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new RecognitionError('recognizer_unavailable', 'the recognizer is closed'));
    if (!this.install.ok) return Promise.reject(new RecognitionError('recognizer_unavailable', this.install.reason));
    this.startPool();
    return this.readyPromise!;
  }

  isReady(): boolean {
    return !this.closed && [...this.workers].filter((w) => w.proc.warm).length === this.options.size;
  }

  start(request: RecognitionRequest): RecognitionJob {
    const job = new Job(this, this.nextJobId++, request, null);
    const refusal = this.refusal(request);
    if (refusal) {
      this.settle(job, refusal);
      return job;
    }
    if (request.phrases && request.phrases.length > 0) {
      const set = normalisePhrases(request.phrases);
      if (set.refused.length > 0) {
        this.options.log?.debug({ event: 'pocketsphinx.phrases_refused', refused: set.refused.length, reasons: set.refused.slice(0, 10).map((r) => r.reason) }, 'phrases left out of the grammar');
      }
      if (set.normalised.length === 0) {
        this.settle(job, new RecognitionError('recognizer_failed', 'none of the phrases can be put in a grammar'));
        return job;
      }
      job.phrases = set;
    }
    this.live.add(job);
    job.deadline = setTimeout(() => this.timeOut(job, `no transcript within ${this.options.jobDeadlineMs} ms of the start`), this.options.jobDeadlineMs);
    job.onAbort = () => this.jobCancel(job);
    request.signal.addEventListener('abort', job.onAbort, { once: true });
    this.startPool();
    const free = this.idle.shift();
    if (free) this.run(job, free);
    else if (this.waiting.length >= this.options.maxWaiting) {
      this.refusedBusy++;
      this.settle(job, new RecognitionError('recognizer_busy', `every recognizer process is busy and ${this.waiting.length} turns wait`, 1000));
    } else this.waiting.push(job);
    return job;
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      for (const job of [...this.live]) this.settle(job, new RecognitionError('recognizer_unavailable', 'the recognizer is shutting down'));
      for (const l of this.readyListeners.splice(0)) l.reject(new RecognitionError('recognizer_unavailable', 'the recognizer closed before it was ready'));
      const exits = [...this.workers].map((w) => {
        w.proc.kill();
        return w.proc.exited();
      });
      // SIGKILL ends a process at once; the bound only keeps close() from waiting on a zombie forever.
      this.closing = Promise.race([Promise.all(exits).then(() => {}), new Promise<void>((r) => setTimeout(r, 2_000).unref())]);
    }
    return this.closing;
  }

  stats(): PocketSphinxStats {
    const all = [...this.workers];
    return {
      size: all.length,
      warm: all.filter((w) => w.proc.warm).length,
      busy: all.filter((w) => w.job !== null).length,
      waiting: this.waiting.length,
      restarts: this.restarts,
      refusedBusy: this.refusedBusy,
      workerCpuMs: (this.retiredCpuUs + all.reduce((sum, w) => sum + w.proc.cpuUs, 0)) / 1000,
      lastStartMs: this.lastStartMs,
    };
  }

  /** Process ids of the live workers (tests kill them). */
  pids(): number[] {
    return [...this.workers].filter((w) => !w.proc.dead).map((w) => w.proc.pid);
  }

  /** The reason a new job cannot even queue, or null. */
  private refusal(request: RecognitionRequest): RecognitionError | null {
    if (this.closed) return new RecognitionError('recognizer_unavailable', 'the recognizer is closed');
    if (!this.install.ok) return new RecognitionError('recognizer_unavailable', this.install.reason);
    if (this.broken) return new RecognitionError('recognizer_unavailable', this.broken);
    const language = request.language.toLowerCase().split(/[-_]/)[0];
    if (!this.languages.includes(language ?? '')) return new RecognitionError('recognizer_unavailable', `pocketsphinx does not hear "${request.language}"`);
    if (request.phrases && request.phrases.length > maxPhrases) return new RecognitionError('recognizer_failed', `more than ${maxPhrases} phrases`);
    if (request.signal.aborted) return new RecognitionError('recognizer_failed', 'the turn was cancelled before it started');
    return null;
  }

  // --- jobs -------------------------------------------------------------------------------

  /** @internal */
  jobWrite(job: Job, pcm: Int16Array): void {
    if (job.state === 'done' || job.finishRequested || pcm.length === 0) return;
    job.totalSamples += pcm.length;
    if (job.totalSamples > this.options.maxJobAudioMs * samplesPerMs) {
      this.fail(job, new RecognitionError('recognizer_failed', `the turn is longer than ${this.options.maxJobAudioMs / 1000} s of audio`), 'reset');
      return;
    }
    const worker = job.worker;
    if (!worker) {
      job.pendingSamples += pcm.length;
      if (job.pendingSamples > this.options.maxPendingAudioMs * samplesPerMs) {
        this.fail(job, new RecognitionError('recognizer_failed', `more than ${this.options.maxPendingAudioMs / 1000} s of audio waited for a recognizer process`), 'reset');
        return;
      }
      job.pending.push(pcm.slice()); // the caller may reuse its buffer
      return;
    }
    worker.proc.audio(job.id, pcm);
    this.checkBacklog(job, worker);
  }

  /** @internal */
  jobFinish(job: Job): void {
    if (job.state === 'done' || job.finishRequested) return;
    job.finishRequested = true;
    job.finishTimer = setTimeout(() => this.timeOut(job, `no transcript within ${this.options.finishTimeoutMs} ms of the end of the turn`), this.options.finishTimeoutMs);
    if (job.worker) this.sendEnd(job, job.worker);
  }

  /** @internal */
  jobCancel(job: Job): void {
    if (job.state === 'done') return;
    this.fail(job, new RecognitionError('recognizer_failed', 'the turn was cancelled'), 'reset');
  }

  private run(job: Job, worker: Worker): void {
    job.state = 'running';
    job.worker = worker;
    worker.job = job;
    worker.proc.start(job.id, job.phrases?.normalised);
    for (const pcm of job.pending) worker.proc.audio(job.id, pcm);
    job.pending = [];
    job.pendingSamples = 0;
    if (job.finishRequested) this.sendEnd(job, worker);
    this.checkBacklog(job, worker);
  }

  private sendEnd(job: Job, worker: Worker): void {
    job.state = 'finishing';
    worker.proc.end(job.id);
  }

  /** The worker is not keeping up with this job's audio: past the bound the job fails and the worker is replaced. */
  private checkBacklog(job: Job, worker: Worker): void {
    if (job.state === 'done' || worker.proc.backlogBytes <= this.options.maxPendingAudioMs * samplesPerMs * 2) return;
    this.fail(job, new RecognitionError('recognizer_failed', `more than ${this.options.maxPendingAudioMs / 1000} s of audio waited for the recognizer process`), 'kill');
  }

  private timeOut(job: Job, message: string): void {
    if (job.state === 'done') return;
    // A worker that owes a final and gave none in time may be stuck: replace it. One still
    // taking audio is only reset.
    this.fail(job, new RecognitionError('recognizer_timeout', message), job.state === 'finishing' ? 'kill' : 'reset');
  }

  /** Settle `job` with `error` and give its worker back (reset) or replace it (kill). */
  private fail(job: Job, error: RecognitionError, worker: 'reset' | 'kill'): void {
    const w = job.worker;
    this.settle(job, error);
    if (!w || w.job !== job) return;
    w.job = null;
    if (worker === 'kill' || !w.proc.cleanReset) {
      w.killed = true;
      w.proc.kill();
    } else {
      w.proc.cancel(job.id);
      this.release(w);
    }
  }

  private settle(job: Job, outcome: string | RecognitionError): void {
    if (job.state === 'done') return;
    job.state = 'done';
    if (job.deadline) clearTimeout(job.deadline);
    if (job.finishTimer) clearTimeout(job.finishTimer);
    job.deadline = job.finishTimer = null;
    if (job.onAbort) job.request.signal.removeEventListener('abort', job.onAbort);
    job.onAbort = null;
    job.pending = [];
    this.live.delete(job);
    const i = this.waiting.indexOf(job);
    if (i >= 0) this.waiting.splice(i, 1);
    if (typeof outcome === 'string') job.resolve(outcome);
    else job.reject(outcome);
  }

  // --- processes --------------------------------------------------------------------------

  private startPool(): void {
    if (this.started || this.closed || !this.install.ok) return;
    this.started = true;
    this.readyPromise = new Promise<void>((resolve, reject) => this.readyListeners.push({ resolve, reject }));
    // ready() may never be awaited (jobs alone start the pool).
    this.readyPromise.catch(() => {});
    for (let i = 0; i < this.options.size; i++) this.spawnWorker();
  }

  private release(worker: Worker): void {
    if (worker.proc.dead || worker.killed || this.closed) return;
    worker.job = null;
    const next = this.waiting.shift();
    if (next) this.run(next, worker);
    else this.idle.push(worker);
  }

  private spawnWorker(): void {
    if (this.closed || !this.install.ok) return;
    const paths = this.install.paths;
    let worker!: Worker;
    const owns = (job: number) => worker.job !== null && worker.job.id === job && worker.job.state !== 'done';
    const proc = new SphinxProcess(this.options.workerPath ?? defaultSphinxWorkerPath(), paths, {
      ready: () => {
        clearTimeout(startTimer);
        if (!proc.cleanReset) this.options.log?.warn({ event: 'pocketsphinx.no_clean_reset' }, 'this libpocketsphinx build cannot be reset between turns: a cancelled turn costs a process restart');
        worker.wasWarm = true;
        this.lastStartMs = performance.now() - worker.spawnedAt;
        this.startFailures = 0;
        this.release(worker);
        if (this.isReady()) for (const l of this.readyListeners.splice(0)) l.resolve();
      },
      partial: (job, text) => {
        if (!owns(job)) return;
        const j = worker.job!;
        try {
          j.request.onPartial?.(j.phrases ? mapBack(j.phrases, text) : text);
        } catch {
          /* a listener's fault must not stop the recognition */
        }
      },
      final: (job, result) => {
        if (!owns(job)) return; // a cancelled job's final
        const j = worker.job!;
        this.crashes = 0;
        this.settle(j, j.phrases ? mapBack(j.phrases, result.text) : result.text.trim());
        this.release(worker);
      },
      error: (job, error) => {
        if (!owns(job)) return;
        // Whatever the worker says went wrong, the turn's recognition failed.
        this.settle(worker.job!, new RecognitionError('recognizer_failed', error.message));
        this.release(worker); // the worker dropped the utterance before it reported
      },
      dropped: (_job, info) => {
        this.options.log?.debug({ event: 'pocketsphinx.phrases_dropped', dropped: info.phrases.length, words: info.words.slice(0, 10) }, 'phrases with words missing from the dictionary left out of the grammar');
      },
      exit: (how, stderr) => {
        clearTimeout(startTimer);
        this.workers.delete(worker);
        const i = this.idle.indexOf(worker);
        if (i >= 0) this.idle.splice(i, 1);
        this.retiredCpuUs += proc.cpuUs;
        const job = worker.job;
        worker.job = null;
        if (job) this.settle(job, new RecognitionError('recognizer_failed', `the recognizer process exited (${how})`));
        if (this.closed) return;
        const wasWarm = worker.wasWarm;
        if (!wasWarm) {
          this.startFailures++;
          if (this.startFailures >= 3 * this.options.size) {
            this.broken = `pocketsphinx cannot start: ${stderr || how}`;
            this.options.log?.warn({ event: 'pocketsphinx.broken', reason: this.broken }, 'speech recognition is unavailable');
            for (const l of this.readyListeners.splice(0)) l.reject(new RecognitionError('recognizer_unavailable', this.broken));
            for (const j of [...this.waiting]) this.settle(j, new RecognitionError('recognizer_unavailable', this.broken));
            return;
          }
        }
        this.restarts++;
        let delay = 0;
        if (!worker.killed) {
          this.crashes++;
          this.options.log?.warn({ event: 'pocketsphinx.crash', how, stderr: stderr.slice(-300) }, 'a recognizer process died');
          // Backoff grows while processes keep dying with no final in between.
          delay = this.crashes <= 1 && wasWarm ? 0 : Math.min(5_000, 100 * 2 ** Math.min(this.crashes, 6));
        }
        setTimeout(() => this.spawnWorker(), delay).unref();
      },
    });
    worker = { proc, job: null, killed: false, wasWarm: false, spawnedAt: performance.now() };
    this.workers.add(worker);
    const startTimer = setTimeout(() => proc.kill(), this.options.startTimeoutMs);
  }
}

/** The recognizer with Debian's PocketSphinx (see `pocketsphinxAvailable()` first). */
export function pocketsphinxRecognizer(options: Partial<PocketSphinxOptions> = {}): PocketSphinxRecognizer {
  return new PocketSphinxRecognizer(options);
}
