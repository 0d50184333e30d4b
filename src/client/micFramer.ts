// Microphone samples at the AudioContext's rate in, fixed-size 16-bit frames at the listen
// rate out (16 kHz, 20 ms: 320 samples). Runs inside the capture AudioWorklet, one render
// quantum (128 samples) at a time, so it works sample by sample and keeps no more than one
// frame and one filter's history: its memory is bounded whatever the input.
//
// Downsampling first low-passes the input (a Blackman-windowed sinc, cut at 90 % of the
// output's Nyquist frequency) so that what lies above it does not fold back into speech,
// then reads the output samples off the filtered signal by linear interpolation.
//
// The class is also the worklet's source text (`micFramerSource`): it must stay
// self-contained (no imports, no class fields, no helpers outside it), because the bundler
// cannot follow it into the worklet's global scope.

export class MicFramer {
  /** Input samples per output sample. */
  readonly step: number;
  private readonly taps: Float32Array | null;
  private readonly ring: Float32Array;
  private ringAt: number;
  /** Where the next output sample lies, in input samples from the newest one (in (-1, 0] when due). */
  private due: number;
  /** The previous filtered input sample, the left end of the interpolation. */
  private previous: number;
  private frame: Int16Array;
  private filled: number;
  private readonly frameSamples: number;
  private readonly onFrame: (frame: Int16Array) => void;

  constructor(inputRate: number, outputRate: number, frameSamples: number, onFrame: (frame: Int16Array) => void) {
    this.step = inputRate / outputRate;
    this.taps = this.step > 1 ? MicFramer.lowPass(0.45 / this.step, 2 * Math.ceil(16 * this.step) + 1) : null;
    this.ring = new Float32Array(this.taps ? this.taps.length : 1);
    this.ringAt = 0;
    this.due = 0;
    this.previous = 0;
    this.frameSamples = frameSamples;
    this.frame = new Int16Array(frameSamples);
    this.filled = 0;
    this.onFrame = onFrame;
  }

  /** Windowed-sinc low-pass taps for a cutoff in cycles per sample, summing to 1. */
  static lowPass(cutoff: number, length: number): Float32Array {
    const taps = new Float32Array(length);
    const middle = (length - 1) / 2;
    let sum = 0;
    for (let k = 0; k < length; k++) {
      const x = k - middle;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      const window = 0.42 - 0.5 * Math.cos((2 * Math.PI * k) / (length - 1)) + 0.08 * Math.cos((4 * Math.PI * k) / (length - 1));
      taps[k] = sinc * window;
      sum += taps[k]!;
    }
    for (let k = 0; k < length; k++) taps[k] = taps[k]! / sum;
    return taps;
  }

  /** One block of input, one array per channel (mixed down to mono). */
  push(channels: ArrayLike<Float32Array>): void {
    const count = channels.length;
    if (count === 0) return;
    const length = channels[0]!.length;
    for (let i = 0; i < length; i++) {
      let x = 0;
      for (let c = 0; c < count; c++) x += channels[c]![i]!;
      const y = this.filter(x / count);
      // Every output sample between the previous input sample and this one.
      while (this.due <= 0) {
        this.emit(this.previous + (y - this.previous) * (1 + this.due));
        this.due += this.step;
      }
      this.due -= 1;
      this.previous = y;
    }
  }

  private filter(x: number): number {
    const taps = this.taps;
    if (!taps) return x;
    const ring = this.ring;
    ring[this.ringAt] = x;
    let y = 0;
    let at = this.ringAt;
    for (let k = 0; k < taps.length; k++) {
      y += taps[k]! * ring[at]!;
      at = at === 0 ? ring.length - 1 : at - 1;
    }
    this.ringAt = this.ringAt + 1 === ring.length ? 0 : this.ringAt + 1;
    return y;
  }

  private emit(sample: number): void {
    const s = Math.round(sample * 32768);
    this.frame[this.filled++] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
    if (this.filled === this.frameSamples) {
      const full = this.frame;
      this.frame = new Int16Array(this.frameSamples);
      this.filled = 0;
      this.onFrame(full);
    }
  }
}

/** The processor's name, registered by `micFramerSource`. */
export const micProcessorName = 'voxline-mic';

/**
 * The capture AudioWorklet's module: MicFramer plus a processor that feeds it each render
 * quantum and posts every full frame (its buffer transferred, not copied) to the node's port.
 * A `{ outputRate }` message from the page starts a new framer at that rate.
 */
export function micFramerSource(): string {
  return `const MicFramer = ${MicFramer.toString()};
class VoxlineMic extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { outputRate, frameMs } = options.processorOptions;
    this.frameMs = frameMs;
    this.start(outputRate);
    this.port.onmessage = (event) => { if (event.data && event.data.outputRate) this.start(event.data.outputRate); };
  }
  start(outputRate) {
    const frameSamples = Math.round((outputRate * this.frameMs) / 1000);
    this.framer = new MicFramer(sampleRate, outputRate, frameSamples, (frame) => this.port.postMessage(frame, [frame.buffer]));
  }
  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0) this.framer.push(input);
    return true;
  }
}
registerProcessor(${JSON.stringify(micProcessorName)}, VoxlineMic);
`;
}
