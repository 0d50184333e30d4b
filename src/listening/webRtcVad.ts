// Voice activity detection with the WebRTC VAD (libfvad compiled to wasm by
// @echogarden/fvad-wasm): no model, ~20 KB, decides each 10/20/30 ms frame synchronously.
// The wasm module is instantiated once per process; each detector owns one fvad instance and
// one frame-sized buffer inside the module's heap, both freed by close().
import { rmsDbfs } from '../audio/level.js';
import { listenSampleRate, type VoiceActivityDetector, type VoiceFrame } from './types.js';

/** libfvad's aggressiveness: 0 quality … 3 very aggressive (fewer frames called speech). */
export type WebRtcVadMode = 0 | 1 | 2 | 3;
export type WebRtcVadFrameMs = 10 | 20 | 30;

export interface WebRtcVadOptions {
  /**
   * Default 3. Measured here: every mode finds the onset of rendered speech in the same
   * frame, but modes 0 and 1 call all of a -30 dBFS white hiss speech, mode 2 and 3 only its
   * first ~80 ms; a false barge-in costs the user more than a missed quiet syllable.
   */
  mode?: WebRtcVadMode;
  /** Default 20 (a decision every 20 ms of audio). */
  frameMs?: WebRtcVadFrameMs;
  /**
   * A frame quieter than this (RMS dBFS) is never speech. Default -55. Why a floor: libfvad
   * keeps saying "speech" for ~80-100 ms after speech stops (its hangover), even over digital
   * silence, and calls the first ~80 ms of any steady noise speech while its noise model
   * adapts; a floor cuts both where the signal is too quiet to be a talker at the mic.
   * -100 turns it off.
   */
  minSpeechDb?: number;
}

export interface WebRtcVadFactory {
  /** A detector with its own fvad instance (one per session). Sync: the module is loaded. */
  create(options?: WebRtcVadOptions): VoiceActivityDetector;
}

/** The part of the emscripten module we use (fvad.js ships no types). */
interface FvadModule {
  _fvad_new(): number;
  _fvad_free(instance: number): void;
  _fvad_reset(instance: number): void;
  _fvad_set_mode(instance: number, mode: number): number;
  _fvad_set_sample_rate(instance: number, rate: number): number;
  _fvad_process(instance: number, frame: number, length: number): number;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  /** Replaced when the wasm memory grows: always read it through the module. */
  HEAP16: Int16Array;
}

let loading: Promise<WebRtcVadFactory> | undefined;

/** Loads the wasm module once per process; later calls share it. A failed load may be retried. */
export function loadWebRtcVad(): Promise<WebRtcVadFactory> {
  loading ??= (async () => {
    // A non-literal specifier: fvad.js has no declarations, we type the part we use above.
    const specifier: string = '@echogarden/fvad-wasm';
    const { default: init } = (await import(specifier)) as { default: () => Promise<FvadModule> };
    const module = await init();
    return { create: (options) => new WebRtcVad(module, options) };
  })();
  loading.catch(() => {
    loading = undefined;
  });
  return loading;
}

class WebRtcVad implements VoiceActivityDetector {
  readonly frameMs: number;
  private readonly frameSamples: number;
  private readonly mode: WebRtcVadMode;
  private readonly minSpeechDb: number;
  private instance: number;
  /** Byte address of this detector's frame buffer in the wasm heap. */
  private readonly frameBuffer: number;
  /** The frame being filled across pushes (never more than one frame of audio). */
  private readonly pending: Int16Array;
  private filled = 0;
  private closed = false;

  constructor(
    private readonly module: FvadModule,
    { mode = 3, frameMs = 20, minSpeechDb = -55 }: WebRtcVadOptions = {},
  ) {
    if (![0, 1, 2, 3].includes(mode)) throw new RangeError(`WebRTC VAD mode must be 0-3, not ${mode}`);
    if (![10, 20, 30].includes(frameMs)) throw new RangeError(`WebRTC VAD frames must be 10, 20 or 30 ms, not ${frameMs}`);
    if (!Number.isFinite(minSpeechDb)) throw new RangeError('minSpeechDb must be a finite number');
    this.mode = mode;
    this.minSpeechDb = minSpeechDb;
    this.frameMs = frameMs;
    this.frameSamples = (listenSampleRate * frameMs) / 1000;
    this.pending = new Int16Array(this.frameSamples);
    this.instance = module._fvad_new();
    if (this.instance === 0) throw new Error('fvad_new failed (out of wasm memory)');
    this.frameBuffer = module._malloc(this.frameSamples * 2);
    if (this.frameBuffer === 0) {
      module._fvad_free(this.instance);
      throw new Error('could not allocate a VAD frame in wasm memory');
    }
    this.configure();
  }

  push(pcm: Int16Array): VoiceFrame[] {
    if (this.closed) return []; // a frame racing the session's teardown has nobody to tell
    const decisions: VoiceFrame[] = [];
    let offset = 0;
    while (offset < pcm.length) {
      const take = Math.min(this.frameSamples - this.filled, pcm.length - offset);
      if (this.filled === 0 && take === this.frameSamples) {
        // A whole frame inside the input: decide it in place, no copy into `pending`.
        decisions.push(this.decide(pcm.subarray(offset, offset + take)));
      } else {
        this.pending.set(pcm.subarray(offset, offset + take), this.filled);
        this.filled += take;
        if (this.filled === this.frameSamples) {
          this.filled = 0;
          decisions.push(this.decide(this.pending));
        }
      }
      offset += take;
    }
    return decisions;
  }

  reset(): void {
    if (this.closed) return;
    this.filled = 0;
    this.module._fvad_reset(this.instance);
    this.configure(); // fvad_reset also restores the default mode and rate
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.module._fvad_free(this.instance);
    this.module._free(this.frameBuffer);
    this.instance = 0;
  }

  private configure(): void {
    if (this.module._fvad_set_mode(this.instance, this.mode) !== 0) throw new Error(`fvad refused mode ${this.mode}`);
    if (this.module._fvad_set_sample_rate(this.instance, listenSampleRate) !== 0) {
      throw new Error(`fvad refused sample rate ${listenSampleRate}`);
    }
  }

  private decide(frame: Int16Array): VoiceFrame {
    this.module.HEAP16.set(frame, this.frameBuffer >> 1);
    const result = this.module._fvad_process(this.instance, this.frameBuffer, this.frameSamples);
    // -1 only for an invalid frame length, which the constructor rules out.
    if (result < 0) throw new Error(`fvad_process failed on a ${this.frameSamples}-sample frame`);
    const levelDb = rmsDbfs(frame);
    return { speech: result === 1 && levelDb >= this.minSpeechDb, levelDb, durationMs: this.frameMs };
  }
}
