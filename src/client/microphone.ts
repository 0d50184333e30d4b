// The microphone, captured for listening: getUserMedia with the browser's echo cancellation,
// noise suppression and automatic gain on (the assistant's voice comes out of the same
// machine's speakers), into an AudioWorklet (./micFramer.ts) that hands back 20 ms frames of
// 16-bit PCM at the listen rate. close() releases everything it took and is idempotent.
import { micFramerSource, micProcessorName } from './micFramer.js';

export interface MicrophoneOptions {
  /** The context the capture runs in (its rate is resampled to `outputRate`). */
  context: AudioContext;
  /** The listen rate (default 16 000). */
  outputRate?: number;
  /** Frame length (default 20 ms). */
  frameMs?: number;
  /** Extra constraints, over echoCancellation, noiseSuppression and autoGainControl on. */
  constraints?: MediaTrackConstraints;
}

/** The constraints every capture asks for: the browser's own voice processing, mono. */
export const microphoneConstraints: MediaTrackConstraints = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
  channelCount: 1,
};

// One module load per context: addModule twice would register the processor twice (an error).
const loaded = new WeakMap<BaseAudioContext, Promise<void>>();

function loadProcessor(context: AudioContext): Promise<void> {
  let done = loaded.get(context);
  if (!done) {
    const url = URL.createObjectURL(new Blob([micFramerSource()], { type: 'application/javascript' }));
    done = context.audioWorklet.addModule(url).finally(() => URL.revokeObjectURL(url));
    loaded.set(context, done);
  }
  return done;
}

export class Microphone {
  private closed = false;

  private constructor(
    readonly stream: MediaStream,
    private readonly source: MediaStreamAudioSourceNode,
    private readonly node: AudioWorkletNode,
  ) {}

  /** Ask for the microphone and start capturing; every frame goes to `onFrame`. */
  static async open(options: MicrophoneOptions, onFrame: (frame: Int16Array) => void): Promise<Microphone> {
    const { context } = options;
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { ...microphoneConstraints, ...options.constraints } });
    try {
      await loadProcessor(context);
      const source = context.createMediaStreamSource(stream);
      // No outputs: the node is a sink the context pulls on its own, so nothing of the
      // microphone reaches the speakers.
      const node = new AudioWorkletNode(context, micProcessorName, {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        channelCount: 1,
        channelCountMode: 'explicit',
        processorOptions: { outputRate: options.outputRate ?? 16_000, frameMs: options.frameMs ?? 20 },
      });
      const mic = new Microphone(stream, source, node);
      node.port.onmessage = (event: MessageEvent<Int16Array>) => {
        if (!mic.closed) onFrame(event.data);
      };
      source.connect(node);
      return mic;
    } catch (error) {
      for (const track of stream.getTracks()) track.stop();
      throw error;
    }
  }

  /** Resample to another listen rate from now on (the server granted a different one). */
  setOutputRate(outputRate: number): void {
    if (!this.closed) this.node.port.postMessage({ outputRate });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const track of this.stream.getTracks()) track.stop();
    this.source.disconnect();
    this.node.port.onmessage = null;
    this.node.port.close();
    this.node.disconnect();
  }
}
