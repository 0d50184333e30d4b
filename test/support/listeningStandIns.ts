// Small in-process implementations of the listening ports, for tests until the real ones
// (WebRTC VAD, PocketSphinx, Groq, the Opus mic gate) are merged: a level VAD (and one that
// decides later, as Silero does, when the test says), a PCM mic gate and a recognizer scripted by
// the test, with a registry of its live jobs.
import type { MicInput, MicRefusal } from '../../src/listening/listenerHost.js';
import {
  listenSampleRate,
  RecognitionError,
  type AsyncVoiceActivityDetector,
  type RecognitionJob,
  type RecognitionRequest,
  type SpeechRecognizer,
  type VoiceActivityDetector,
  type VoiceFrame,
} from '../../src/listening/types.js';
import type { ErrorCode } from '../../machines/types.js';

/** A frame is speech when its RMS level is at or above `thresholdDb` (dBFS). */
export function levelVad({ frameMs = 20, thresholdDb = -50 } = {}): VoiceActivityDetector & { closed: boolean } {
  const size = (frameMs * listenSampleRate) / 1000;
  const pending = new Int16Array(size);
  let filled = 0;
  const vad = {
    frameMs,
    closed: false,
    push(pcm: Int16Array): VoiceFrame[] {
      const out: VoiceFrame[] = [];
      for (let i = 0; i < pcm.length; ) {
        const n = Math.min(size - filled, pcm.length - i);
        pending.set(pcm.subarray(i, i + n), filled);
        filled += n;
        i += n;
        if (filled === size) {
          let sum = 0;
          for (let k = 0; k < size; k++) sum += pending[k]! * pending[k]!;
          const rms = Math.sqrt(sum / size) / 32768;
          const levelDb = rms > 0 ? Math.max(-100, 20 * Math.log10(rms)) : -100;
          out.push({ speech: levelDb >= thresholdDb, levelDb, durationMs: frameMs });
          filled = 0;
        }
      }
      return out;
    },
    reset() {
      filled = 0;
    },
    close() {
      vad.closed = true;
    },
  };
  return vad;
}

/** The level VAD, but its decisions are handed out only when the test answers a drain. */
export function laterVad(frameMs = 20) {
  const inner = levelVad({ frameMs });
  const decided: VoiceFrame[] = [];
  const waiters: Array<(frames: VoiceFrame[]) => void> = [];
  const vad = {
    frameMs,
    decidesLater: true as const,
    closed: false,
    push(pcm: Int16Array): VoiceFrame[] {
      if (!vad.closed) decided.push(...inner.push(pcm));
      return [];
    },
    drain(): Promise<VoiceFrame[]> {
      return new Promise((resolve) => waiters.push(resolve));
    },
    /** Answer the waiting drain with the next `count` decisions (all by default). */
    answer(count = decided.length) {
      waiters.shift()?.(decided.splice(0, count));
    },
    get waiting() {
      return waiters.length;
    },
    reset() {},
    close() {
      vad.closed = true;
    },
  };
  return vad satisfies AsyncVoiceActivityDetector;
}

/**
 * A pcm_s16le 16 kHz mic gate: 10-250 ms, even length (bad_audio); more than `aheadMs` of audio
 * ahead of the wall clock since the first frame is dropped (audio_overrun), unless `realtime` is off.
 */
export function pcmMicInput({ realtime = false, aheadMs = 1_000, now = () => performance.now() } = {}): MicInput & { closed: boolean } {
  let started: number | null = null;
  let receivedMs = 0;
  const gate = {
    closed: false,
    accept(payload: Uint8Array): Int16Array | MicRefusal {
      const ms = payload.byteLength / 2 / (listenSampleRate / 1000);
      if (payload.byteLength % 2 !== 0 || ms < 10 || ms > 250) {
        return { code: 'bad_audio', message: 'microphone frames must be 10-250 ms of the listen format, an even number of bytes' };
      }
      if (realtime) {
        started ??= now();
        if (receivedMs + ms > now() - started + aheadMs) return { code: 'audio_overrun', message: 'microphone audio arrives faster than real time; frame dropped' };
      }
      receivedMs += ms;
      // A fresh, aligned copy: the caller may keep it.
      const pcm = new Int16Array(payload.byteLength / 2);
      new Uint8Array(pcm.buffer).set(payload);
      return pcm;
    },
    close() {
      gate.closed = true;
    },
  };
  return gate;
}

export interface ScriptedJob {
  request: RecognitionRequest;
  samples: number;
  finished: boolean;
  cancelled: boolean;
  /** Settle the job's finish() (when the script did not already). */
  resolve(text: string): void;
  reject(code: ErrorCode): void;
  partial(text: string): void;
}

export type FinishScript = (job: ScriptedJob) => 'hang' | { text: string } | { error: ErrorCode };

/** A recognizer whose jobs do what the test says at finish(); `live` counts jobs not yet cancelled or settled. */
export class ScriptedRecognizer implements SpeechRecognizer {
  readonly jobs: ScriptedJob[] = [];
  readonly partials = true;
  closed = false;

  constructor(
    readonly name = 'scripted',
    readonly languages: readonly string[] = ['en'],
    public onFinish: FinishScript = () => ({ text: 'what time is it' }),
    readonly restrictsToPhrases = false,
  ) {}

  /** Jobs started and not released (cancelled) yet. */
  get live(): number {
    return this.jobs.filter((j) => !j.cancelled).length;
  }

  start(request: RecognitionRequest): RecognitionJob {
    let settle: { resolve: (t: string) => void; reject: (e: unknown) => void } | null = null;
    const job: ScriptedJob = {
      request,
      samples: 0,
      finished: false,
      cancelled: false,
      resolve: (text) => settle?.resolve(text),
      reject: (code) => settle?.reject(new RecognitionError(code, `scripted ${code}`)),
      partial: (text) => {
        if (!job.cancelled) request.onPartial?.(text);
      },
    };
    this.jobs.push(job);
    return {
      write: (pcm) => {
        if (!job.finished && !job.cancelled) job.samples += pcm.length;
      },
      finish: () => {
        job.finished = true;
        return new Promise<string>((resolve, reject) => {
          settle = { resolve, reject };
          const outcome = this.onFinish(job);
          if (outcome === 'hang') return;
          if ('text' in outcome) resolve(outcome.text);
          else reject(new RecognitionError(outcome.error, `scripted ${outcome.error}`));
        });
      },
      cancel: () => {
        job.cancelled = true;
      },
    };
  }

  async ready(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A tone of `ms` at about `db` dBFS (a square-ish wave: its RMS is its amplitude). */
export function tone(ms: number, db = -20, rate = listenSampleRate): Int16Array {
  const n = Math.round((ms * rate) / 1000);
  const amp = Math.round(32767 * 10 ** (db / 20));
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = (i >> 3) % 2 === 0 ? amp : -amp;
  return out;
}

/** PCM as the bytes of a binary frame. */
export function bytesOf(pcm: Int16Array): Buffer {
  return Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}
