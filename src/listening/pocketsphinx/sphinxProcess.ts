// One PocketSphinx worker process and its framed protocol (see pocketsphinxWorker.mjs):
// spawning, reading frames, writing commands. It knows nothing of jobs or queues; the
// recognizer owns those and hears about everything through `SphinxProcessEvents`.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
import type { PocketSphinxPaths } from './install.js';

// The frame kinds, also in pocketsphinxWorker.mjs: the worker runs as plain .mjs without tsx, so it
// cannot import them; change both together.
const HEADER = 9;
const IN_START = 1;
const IN_AUDIO = 2;
const IN_END = 3;
const IN_CANCEL = 4;
const OUT_READY = 1;
const OUT_PARTIAL = 2;
const OUT_FINAL = 3;
const OUT_ERROR = 4;
const OUT_DROPPED = 5;
/** The worker's frames are small (a hypothesis, a JSON line): a larger one means it is out of step. */
const MAX_INBOUND_FRAME = 256 * 1024;
/** Audio goes to the worker in frames of at most this many samples (2 s). */
const MAX_AUDIO_FRAME_SAMPLES = 32_000;

export interface SphinxProcessEvents {
  ready(info: { cpuUs: number; initMs: number }): void;
  partial(job: number, text: string): void;
  final(job: number, result: { text: string; cpuUs: number }): void;
  error(job: number, error: { code?: string; message: string }): void;
  dropped(job: number, info: { phrases: string[]; words: string[] }): void;
  /** Exactly once; `stderr` is the tail of what it wrote there. */
  exit(how: string, stderr: string): void;
}

type Proc = ChildProcessByStdio<Writable, Readable, Readable>;

export function defaultSphinxWorkerPath(): string {
  // Next to this module in the sources; the build copies it next to the compiled module too.
  const here = fileURLToPath(new URL('./pocketsphinxWorker.mjs', import.meta.url));
  if (existsSync(here)) return here;
  return fileURLToPath(new URL('../../../../src/listening/pocketsphinx/pocketsphinxWorker.mjs', import.meta.url));
}

export class SphinxProcess {
  readonly pid: number;
  warm = false;
  dead = false;
  /** Each utterance starts from a clean decoder state (see the worker); false: replace it after a cancel. */
  cleanReset = false;
  /** The worker's own CPU time (µs) as it last reported it. */
  cpuUs = 0;
  private readonly proc: Proc;
  private buffer: Buffer = Buffer.alloc(0);
  private stderr = '';

  constructor(workerPath: string, paths: PocketSphinxPaths, private readonly events: SphinxProcessEvents) {
    this.proc = spawn(process.execPath, [workerPath, JSON.stringify(paths)], { stdio: ['pipe', 'pipe', 'pipe'] }) as Proc;
    this.pid = this.proc.pid ?? -1;
    this.proc.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString('utf8')).slice(-2000);
    });
    this.proc.stdin.on('error', () => {}); // a dead worker's pipe: 'exit' follows
    this.proc.on('error', () => {}); // a failed spawn is followed by 'exit'/'close'
    this.proc.stdout.on('data', (data: Buffer) => {
      this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
      this.drain();
    });
    this.proc.once('exit', (code, signal) => {
      this.dead = true;
      this.warm = false;
      this.events.exit(signal ?? `exit ${code}`, this.stderr.trim());
    });
  }

  /** Bytes written to the worker and not yet taken by its pipe (its backlog in this process). */
  get backlogBytes(): number {
    return this.dead ? 0 : this.proc.stdin.writableLength;
  }

  start(job: number, phrases: readonly string[] | undefined): void {
    this.send(IN_START, job, Buffer.from(JSON.stringify(phrases ? { phrases } : {}), 'utf8'));
  }

  audio(job: number, pcm: Int16Array): void {
    for (let i = 0; i < pcm.length; i += MAX_AUDIO_FRAME_SAMPLES) {
      const part = pcm.subarray(i, Math.min(pcm.length, i + MAX_AUDIO_FRAME_SAMPLES));
      this.send(IN_AUDIO, job, Buffer.from(part.buffer, part.byteOffset, part.byteLength));
    }
  }

  end(job: number): void {
    this.send(IN_END, job);
  }

  cancel(job: number): void {
    this.send(IN_CANCEL, job);
  }

  kill(): void {
    if (!this.dead) this.proc.kill('SIGKILL');
  }

  /** Resolves once the process has exited (at once if it has). */
  exited(): Promise<void> {
    if (this.dead) return Promise.resolve();
    return new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }

  private send(kind: number, job: number, payload: Buffer = Buffer.alloc(0)): void {
    if (this.dead) return;
    const header = Buffer.allocUnsafe(HEADER);
    header.writeUInt32LE(payload.length, 0);
    header.writeUInt8(kind, 4);
    header.writeUInt32LE(job >>> 0, 5);
    // One copy: the caller may reuse its samples as soon as this returns.
    this.proc.stdin.write(Buffer.concat([header, payload]));
  }

  private drain(): void {
    while (this.buffer.length >= HEADER) {
      const length = this.buffer.readUInt32LE(0);
      if (length > MAX_INBOUND_FRAME) {
        // Out of step: nothing it says can be trusted any more.
        this.stderr += '\n(protocol) oversized frame from the worker';
        this.kill();
        return;
      }
      if (this.buffer.length < HEADER + length) return;
      const kind = this.buffer.readUInt8(4);
      const job = this.buffer.readUInt32LE(5);
      const payload = this.buffer.subarray(HEADER, HEADER + length);
      this.buffer = this.buffer.subarray(HEADER + length);
      this.dispatch(kind, job, payload);
    }
  }

  private dispatch(kind: number, job: number, payload: Buffer): void {
    if (kind === OUT_PARTIAL) {
      this.events.partial(job, payload.toString('utf8'));
      return;
    }
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(payload.toString('utf8') || '{}');
      if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      /* keep the empty body: every field below has a default */
    }
    const cpuUs = typeof body.cpuUs === 'number' ? body.cpuUs : this.cpuUs;
    if (kind === OUT_READY) {
      this.cpuUs = cpuUs;
      this.warm = true;
      this.cleanReset = body.cmnReset === true;
      this.events.ready({ cpuUs, initMs: typeof body.initMs === 'number' ? body.initMs : Number.NaN });
    } else if (kind === OUT_FINAL) {
      this.cpuUs = cpuUs;
      this.events.final(job, { text: typeof body.text === 'string' ? body.text : '', cpuUs });
    } else if (kind === OUT_ERROR) {
      const error: { code?: string; message: string } = { message: typeof body.message === 'string' ? body.message : 'recognition failed' };
      if (typeof body.code === 'string') error.code = body.code;
      this.events.error(job, error);
    } else if (kind === OUT_DROPPED) {
      const strings = (v: unknown) => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
      this.events.dropped(job, { phrases: strings(body.phrases), words: strings(body.words) });
    }
  }
}
