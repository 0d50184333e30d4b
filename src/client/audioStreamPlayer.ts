// PCM-native, timeline-driven playback for the browser. Each chunk becomes an
// AudioBufferSourceNode started on an integer sample frame of the AudioContext timeline
// (never "now"), right after the previous one, behind a small jitter buffer. Frames of any
// stream but the current one are dropped. An utterance is finished only when its end has
// arrived AND every scheduled source has ended (with a safety timeout in case `onended`
// never fires), and `onFinished` fires exactly once per utterance.

export interface AudioStreamPlayerOptions {
  /** Where audio goes (default: the context's destination). */
  destination?: AudioNode;
  /** Delay between the first chunk's arrival and its playback, absorbing network jitter (default 60 ms). */
  jitterMs?: number;
  /** Extra time after the expected end before an utterance is declared finished anyway (default 500 ms). */
  safetyMs?: number;
}

export interface PlaybackFinished {
  stream: number;
  /** `played`: every source ended; `cut`: stopped, superseded or interrupted; `safety`: onended never came. */
  how: 'played' | 'cut' | 'safety';
  /** How much of the stream went out to the speakers, in ms (what the listener heard). */
  playedMs: number;
}

interface Utterance {
  stream: number;
  /** Timeline frame of its first sample (null before the first chunk). */
  startFrame: number | null;
  nextFrame: number;
  /** Scheduled sources with their first frame and length, to tell how much has played. */
  sources: Map<AudioBufferSourceNode, { from: number; length: number }>;
  ended: boolean;
  finished: boolean;
  safety: ReturnType<typeof setTimeout> | null;
  samples: number;
  /** Samples played, fixed when the utterance finished (null while it plays). */
  playedSamples: number | null;
  /** Samples held back so the next source starts on a clean frame (see cleanFrameAtOrBefore). */
  held: Int16Array;
}

export class AudioStreamPlayer {
  readonly context: AudioContext;
  private readonly destination: AudioNode;
  private readonly jitterFrames: number;
  private readonly safetyMs: number;
  private current: Utterance | null = null;
  /** Enqueued utterances, played after the current one in order. */
  private queue: Utterance[] = [];
  private readonly finishedListeners = new Set<(event: PlaybackFinished) => void>();
  private readonly startListeners = new Set<(event: { stream: number; startFrame: number }) => void>();

  constructor(context: AudioContext, options: AudioStreamPlayerOptions = {}) {
    this.context = context;
    this.destination = options.destination ?? context.destination;
    this.jitterFrames = Math.round(((options.jitterMs ?? 60) / 1000) * context.sampleRate);
    this.safetyMs = options.safetyMs ?? 500;
  }

  /** The stream being played, or null. */
  get stream(): number | null {
    return this.current?.stream ?? null;
  }

  get playing(): boolean {
    return this.current !== null && !this.current.finished;
  }

  onFinished(listener: (event: PlaybackFinished) => void): () => void {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }

  /**
   * How much of `stream` has played so far, in ms: what was scheduled minus what is still
   * ahead of the timeline (an underrun's silence is not counted). Null for a stream that is
   * neither current nor queued.
   */
  playedMs(stream: number): number | null {
    const u = this.current?.stream === stream ? this.current : this.queue.find((q) => q.stream === stream);
    return u ? this.msOf(this.playedSamples(u)) : null;
  }

  /** Fires when an utterance's first sample is scheduled, with its timeline frame. */
  onStart(listener: (event: { stream: number; startFrame: number }) => void): () => void {
    this.startListeners.add(listener);
    return () => this.startListeners.delete(listener);
  }

  /**
   * A new utterance. With `interrupt`, everything scheduled or queued stops now and the
   * timeline restarts; otherwise it plays after what is current, back to back.
   */
  begin(stream: number, interrupt = true): void {
    const u: Utterance = { stream, startFrame: null, nextFrame: 0, sources: new Map(), ended: false, finished: false, safety: null, samples: 0, playedSamples: null, held: new Int16Array(0) };
    if (interrupt) {
      this.stop();
      this.current = u;
    } else if (!this.current || this.current.ended) {
      u.nextFrame = this.current ? this.current.nextFrame : 0;
      this.current = u;
    } else {
      this.queue.push(u);
    }
  }

  /** Schedule a chunk of the current stream; chunks of other streams are dropped. */
  push(stream: number, pcm: Int16Array): void {
    const u = this.current;
    if (!u || u.stream !== stream || u.ended || u.finished || pcm.length === 0) return;
    const rate = this.context.sampleRate;
    const now = this.nowFrame();
    let samples = u.held.length > 0 ? concat(u.held, pcm) : pcm;
    u.held = new Int16Array(0);
    // First chunk, or an underrun: anchor behind the jitter buffer; otherwise play back to back.
    if (u.nextFrame < now + 128) u.nextFrame = cleanFrameAtOrAfter(now + this.jitterFrames, rate);
    // Keep the tail that would make the next source start on an unclean frame for the next chunk.
    const end = cleanFrameAtOrBefore(u.nextFrame + samples.length, rate, u.nextFrame);
    if (end < u.nextFrame + samples.length) {
      u.held = samples.slice(end - u.nextFrame);
      samples = samples.subarray(0, end - u.nextFrame);
    }
    if (samples.length > 0) this.schedule(u, samples);
  }

  private schedule(u: Utterance, pcm: Int16Array): void {
    const rate = this.context.sampleRate;
    const buffer = this.context.createBuffer(1, pcm.length, rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i]! / 32768;
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.destination);
    source.onended = () => {
      u.sources.delete(source);
      source.disconnect();
      this.maybeFinish(u, 'played');
    };
    u.sources.set(source, { from: u.nextFrame, length: pcm.length });
    source.start(u.nextFrame / rate); // an exact frame: no interpolation between samples
    if (u.startFrame === null) {
      u.startFrame = u.nextFrame;
      for (const l of this.startListeners) l({ stream: u.stream, startFrame: u.nextFrame });
    }
    u.nextFrame += pcm.length;
    u.samples += pcm.length;
  }

  /** The server's speak.end for `stream` arrived: finish once what is scheduled has played. */
  end(stream: number): void {
    const queued = this.queue.findIndex((q) => q.stream === stream);
    if (queued >= 0) {
      // Ended before its turn (stopped, or failed before any audio): nothing was scheduled.
      const [q] = this.queue.splice(queued, 1);
      q!.ended = true;
      this.finish(q!, 'cut');
      return;
    }
    const u = this.current;
    if (!u || u.stream !== stream || u.ended) return;
    if (u.held.length > 0) {
      const tail = u.held;
      u.held = new Int16Array(0);
      if (u.nextFrame >= this.nowFrame() + 128) this.schedule(u, tail);
    }
    u.ended = true;
    const left = Math.max(0, (u.nextFrame - this.nowFrame()) / this.context.sampleRate);
    u.safety = setTimeout(() => {
      u.playedSamples = this.playedSamples(u);
      for (const s of u.sources.keys()) stopQuietly(s);
      u.sources.clear();
      this.finish(u, 'safety');
    }, left * 1000 + this.safetyMs);
    this.maybeFinish(u, 'played');
    // The next enqueued utterance follows right after the last scheduled frame.
    const next = this.queue.shift();
    if (next) {
      next.nextFrame = u.nextFrame;
      this.current = next;
    }
  }

  /** Silence everything now, current and queued (STOP, or a connection drop). */
  stop(): void {
    const all = [...(this.current ? [this.current] : []), ...this.queue];
    this.queue = [];
    for (const u of all) if (!u.finished) this.cut(u);
  }

  private cut(u: Utterance): void {
    u.ended = true;
    // Fixed before the sources go: what was still ahead of the timeline is never heard.
    u.playedSamples = this.playedSamples(u);
    for (const s of u.sources.keys()) stopQuietly(s);
    u.sources.clear();
    this.finish(u, 'cut');
  }

  private maybeFinish(u: Utterance, how: PlaybackFinished['how']): void {
    if (u.ended && u.sources.size === 0) this.finish(u, how);
  }

  private finish(u: Utterance, how: PlaybackFinished['how']): void {
    if (u.finished) return;
    u.finished = true;
    if (u.safety) clearTimeout(u.safety);
    const playedMs = this.msOf(this.playedSamples(u));
    for (const l of this.finishedListeners) l({ stream: u.stream, how, playedMs });
  }

  private playedSamples(u: Utterance): number {
    if (u.playedSamples !== null) return u.playedSamples;
    const now = this.nowFrame();
    let ahead = 0;
    for (const { from, length } of u.sources.values()) ahead += Math.min(length, Math.max(0, from + length - now));
    return u.samples - ahead;
  }

  private msOf(samples: number): number {
    return Math.round((samples * 1000) / this.context.sampleRate);
  }

  private nowFrame(): number {
    return Math.ceil(this.context.currentTime * this.context.sampleRate);
  }
}

/**
 * A frame `f` is clean when (f / rate) * rate === f in double arithmetic: a source started at
 * f / rate then begins exactly on f. Otherwise Chromium sees a start a hair before the frame
 * and plays the buffer through its interpolating path, off by a rounding error.
 */
function isClean(frame: number, rate: number): boolean {
  return (frame / rate) * rate === frame;
}

function cleanFrameAtOrAfter(frame: number, rate: number): number {
  let f = frame;
  while (!isClean(f, rate)) f++;
  return f;
}

/** The last clean frame in (floor, frame], or `floor` when there is none. */
function cleanFrameAtOrBefore(frame: number, rate: number, floor: number): number {
  for (let f = frame; f > floor; f--) if (isClean(f, rate)) return f;
  return floor;
}

function concat(a: Int16Array, b: Int16Array): Int16Array {
  const out = new Int16Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function stopQuietly(source: AudioBufferSourceNode): void {
  source.onended = null;
  try {
    source.stop();
  } catch {
    /* never started or already stopped */
  }
  source.disconnect();
}
