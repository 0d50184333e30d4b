// The upstream of one utterance, as an XState callback actor the session invokes.
// It owns: the provider calls (one piece at a time, strictly in order), the resampler,
// the chunker and an AbortController. The speaker's `active` state owns this actor,
// so leaving that state runs `release()`; CANCEL asks for a release and is answered
// with UPSTREAM_RELEASED once the provider let go.
import { fromCallback } from 'xstate';
import type { UpstreamCommand, UpstreamEvent, UpstreamInput, WireError } from '../../machines/types.js';
import { PcmChunker } from '../audio/chunker.js';
import { StreamResampler } from '../audio/resampler.js';
import { loopTurn } from './loopBudget.js';
import type { ProviderGuard } from '../providers/providerGuard.js';
import { nextItem } from '../providers/iteration.js';
import { ProviderError, type PcmBlock, type SynthesisRequest, type TextStream, type TtsProvider } from '../providers/types.js';
import { SentenceSplitter } from '../text/sentenceSplitter.js';
import { nonSpaceChars } from '../../machines/heardText.js';

export interface VoiceRoute {
  provider: TtsProvider;
  /** The provider's own name for the voice. */
  providerVoice: string;
  /** Circuit breaker and retry-after gate of this provider. */
  guard?: ProviderGuard;
}

export interface SynthesisOptions {
  resolveVoice: (voiceId: string) => VoiceRoute | undefined;
  /** Duration of each audio frame on the wire (20–100 ms). */
  chunkMs: number;
  /**
   * Writes a chunk the utterance's lane passed (see AudioLane) to the session's transport.
   * Without it, every chunk goes through the machine as UPSTREAM_AUDIO.
   */
  writeAudio?: (sessionId: string, stream: number, seq: number, pcm: Int16Array) => void;
  /** Observability hook: a provider failure (already mapped to a code). */
  onProviderError?: (provider: string, error: WireError) => void;
  /** A job started; `onJobGone` follows exactly once, when it was released and its provider let go. */
  onJobStart?: () => void;
  onJobGone?: () => void;
  /**
   * Most bytes of provider audio a piece waiting for its turn (the look-ahead) keeps in memory;
   * past it, nothing more is pulled until its turn and the provider holds the rest (default
   * `defaultLookAheadBytes`).
   */
  lookAheadBytes?: number;
  /**
   * A recorded session's job identity per piece (cluster): the same session, stream and piece
   * name the same synthesis job on whichever gateway asks (src/engine/sessionMove.ts).
   */
  jobOf?: (sessionId: string, stream: number, piece: number) => SynthesisRequest['job'];
  /** Observability hook: audio held in look-ahead buffers grew (positive) or shrank (negative) by this many bytes. */
  onHeldAudio?: (deltaBytes: number) => void;
}

/**
 * 64 KiB: 1.4 s of 24 kHz speech (0.7 s at 48 kHz) ready at a sentence boundary. Playing needs
 * the next piece's first audio there, and enough to cover its request picking up again once it
 * plays (one round trip: the provider held the rest meanwhile); more only costs memory per
 * session (it was 256 KiB, over 5 s).
 */
export const defaultLookAheadBytes = 64 * 1024;

type SendBack = (event: UpstreamEvent) => void;

/**
 * A first sentence shorter than this (about 1.5 s of speech) is joined with the complete
 * sentences after it. Its audio would be over before the next request's first byte is likely
 * back (hundreds of ms upstream, more under load), so going alone would buy a gap later for a
 * few ms sooner now, and cost a whole extra request for "Sure." or "Hi!".
 */
export const minFirstPieceChars = 24;

/**
 * The one abort reason of every released upstream. `abort()` without a reason builds a new
 * DOMException, stack trace included, at every link of the chain (utterance → piece →
 * SDK → HTTP request); a shared reason is passed down instead.
 */
const releasedReason = new DOMException('the utterance released its upstream', 'AbortError');

const handedOn = () => true;

/**
 * Who let the job go, and whether its work has settled (`run()` returned and the provider let go).
 * CANCEL (the session stops the utterance) is answered with UPSTREAM_RELEASED once settled;
 * `release()` (the owning state exits) is followed by `onJobGone` once settled, and after it nothing
 * more is sent back: the owner has stopped listening (XState drops a stopped actor's sendBack).
 *
 *   running    ─CANCEL→ cancelling ─settle→ cancelled (UPSTREAM_RELEASED)
 *   running    ─settle→ settled    ─CANCEL→ cancelled (UPSTREAM_RELEASED)
 *   running, cancelling ─release→ releasing ─settle→ gone (onJobGone)
 *   settled, cancelled  ─release→ gone (onJobGone)
 *
 * Anything else leaves it as it is, so each report happens once.
 */
type JobLife = 'running' | 'cancelling' | 'settled' | 'cancelled' | 'releasing' | 'gone';

export class UtteranceJob {
  private readonly abort = new AbortController();
  private readonly splitter: SentenceSplitter | null;
  private readonly chunker: PcmChunker;
  private resampler: StreamResampler | null = null;
  private paused = false;
  private awaitingText = false;
  private piecesSpoken = 0;
  /** Provider requests made so far (a piece's index in the utterance). */
  private piecesFetched = 0;
  private audioSent = false;
  private readonly wakers = new Set<() => void>();
  private life: JobLife = 'running';
  /** The piece being played (whose audio the session waits for). */
  private playing: PieceFetch | null = null;
  /** The session was told (UPSTREAM_QUEUED) that the playing piece waits for a provider slot. */
  private queuedReported = false;

  constructor(
    private readonly input: UpstreamInput,
    private readonly route: VoiceRoute | undefined,
    private readonly options: SynthesisOptions,
    private readonly sendBack: SendBack,
  ) {
    this.splitter = route ? new SentenceSplitter(route.provider.maxPieceChars) : null;
    this.chunker = new PcmChunker(Math.max(1, Math.round((input.sampleRate * options.chunkMs) / 1000)));
    this.splitter?.push(input.text, input.final);
  }

  /** Handle a command from the session. Total: never throws. */
  command(cmd: UpstreamCommand): void {
    switch (cmd.type) {
      case 'TEXT':
        this.splitter?.push(cmd.text, cmd.final);
        this.wake();
        return;
      case 'FLUSH':
        this.splitter?.flush();
        this.wake();
        return;
      case 'PAUSE':
        this.paused = true;
        this.reportQueued();
        return;
      case 'RESUME':
        this.paused = false;
        this.reportQueued();
        this.wake();
        return;
      case 'CANCEL':
        this.abort.abort(releasedReason);
        this.wake();
        if (this.life === 'running') this.life = 'cancelling';
        else if (this.life === 'settled') this.reportReleased();
        return;
    }
  }

  /** Forced release when the owning state exits. Idempotent. */
  release(): void {
    this.abort.abort(releasedReason);
    this.wake();
    if (this.life === 'running' || this.life === 'cancelling') this.life = 'releasing';
    else if (this.life === 'settled' || this.life === 'cancelled') this.reportGone();
  }

  /** Runs until the text is spoken, an error, or an abort. Never rejects. */
  async run(): Promise<void> {
    const stream = this.input.stream;
    let done = false;
    try {
      if (!this.route || !this.splitter) {
        throw new ProviderError('provider_unavailable', `no provider serves voice "${this.input.voice}"`);
      }
      const splitter = this.splitter;
      if (this.route.provider.openTextStream) await this.runTextStream(this.route.provider.openTextStream.bind(this.route.provider));
      else await this.runPieces(splitter);
      if (!this.abort.signal.aborted) {
        this.emitFrames(this.drainTail(true));
        done = true;
      }
    } catch (error) {
      if (!this.abort.signal.aborted) {
        const wire = toWireError(error);
        this.options.onProviderError?.(this.route?.provider.name ?? 'none', wire);
        this.sendBack({ type: 'UPSTREAM_ERROR', stream, reason: 'failed', error: wire });
      }
    } finally {
      this.resampler?.destroy();
      this.resampler = null;
      if (this.life === 'running') this.life = 'settled';
      else if (this.life === 'cancelling') this.reportReleased();
      else if (this.life === 'releasing') this.reportGone();
    }
    // After the provider let go (every request settled above): the speaker need not ask for a
    // release it would only be told of at once (one event, one timer and a CANCEL less per utterance).
    if (done && this.life === 'settled') this.sendBack({ type: 'UPSTREAM_DONE', stream, released: true });
  }

  private get settled(): boolean {
    return this.life === 'settled' || this.life === 'cancelled' || this.life === 'gone';
  }

  private reportReleased(): void {
    this.life = 'cancelled';
    this.sendBack({ type: 'UPSTREAM_RELEASED', stream: this.input.stream });
  }

  private reportGone(): void {
    this.life = 'gone';
    this.options.onJobGone?.();
  }

  /**
   * One provider request per text piece, spoken strictly in order, with one piece of
   * look-ahead: once a piece streams, the next one is requested and its audio buffered, so
   * a sentence boundary does not cost a whole upstream first-byte wait. Both
   * requests share the utterance's AbortSignal; the job settles only once both let go.
   */
  private async runPieces(splitter: SentenceSplitter): Promise<void> {
    const stream = this.input.stream;
    // The first sentence goes alone (first audio sooner) unless it is too short to cover the
    // next request's first byte; later sentences are packed per request.
    const take = () => {
      const piece = this.piecesSpoken > 0 ? splitter.next(splitter.maxPieceChars) : splitter.next(0, minFirstPieceChars);
      if (piece !== null) this.piecesSpoken++;
      return piece;
    };
    let current: PieceFetch | null = null;
    try {
      while (!this.abort.signal.aborted) {
        if (!current) {
          const piece = take();
          if (piece === null) {
            if (splitter.done) break;
            // Everything given so far is spoken: let it play out, then wait for more text.
            this.emitFrames(this.drainTail(false));
            this.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream });
            await this.sleep();
            continue;
          }
          current = this.fetchPiece(piece);
        }
        // The look-ahead request starts with the current piece's first audio block (checked
        // after every block, so also when text for it arrives later, and at the piece's end).
        // Issued together, the two requests would compete for the upstream exactly when the
        // first audio is due. Waiting any longer than the first audio is worse: under load,
        // the next piece's first byte then comes after the current piece and the client's
        // jitter buffer have run dry (measured: underruns at 200 streams with a 100 ms wait).
        let following = null as PieceFetch | null;
        const lookAhead = () => {
          if (!following && splitter.hasReady) following = this.fetchPiece(take()!);
        };
        try {
          // What text this audio speaks, for what the user heard of an interrupted utterance.
          this.input.lane.startPiece(current.chars);
          await this.play(current, lookAhead);
          this.input.lane.endPiece();
          lookAhead();
        } catch (error) {
          following?.cancel();
          throw error;
        } finally {
          current.drop(); // what a stopped piece kept for its turn
        }
        current = following;
      }
    } finally {
      current?.cancel();
      await Promise.allSettled(this.fetches);
    }
  }

  private readonly fetches = new Set<Promise<void>>();

  /**
   * Start one piece's request now; its audio waits in memory (up to the look-ahead bound) until
   * its turn, then goes straight through.
   */
  private fetchPiece(text: string): PieceFetch {
    const route = this.route!;
    const abort = new AbortController();
    const onAbort = () => abort.abort(releasedReason);
    this.abort.signal.addEventListener('abort', onAbort, { once: true });
    const fetch = new PieceFetch(abort, this.options.onHeldAudio, nonSpaceChars(text));
    const lookAheadBytes = this.options.lookAheadBytes ?? defaultLookAheadBytes;
    const job = this.options.jobOf?.(this.input.sessionId, this.input.stream, this.piecesFetched++);
    const done = (async () => {
      try {
        await this.guarded(abort.signal, async () => {
          const request = {
            text,
            voice: route.providerVoice,
            signal: abort.signal,
            // Once audio went out, the utterance has started: a provider never refuses it for load.
            continuation: this.audioSent,
            onQueued: (queued: boolean) => {
              fetch.queued = queued;
              this.reportQueued();
            },
            ...(job ? { job } : {}),
          };
          const blocks = route.provider.synthesize(request)[Symbol.asyncIterator]();
          // Each block is pulled and handed to the piece by `pull`, never held in this frame: a
          // suspended async function keeps every value it had, and a block already handed on
          // (sent, or held by the piece) would stay alive while the next one is awaited. `pull`
          // resolves true once the block is handed on (false: no more); it returns the piece's
          // promise rather than awaiting it, so its own frame, and the block, go at once.
          const pull = async (): Promise<boolean> => {
            const next = await blocks.next();
            if (next.done || abort.signal.aborted) return false;
            const taking = fetch.push(next.value);
            return taking ? taking.then(handedOn) : true;
          };
          try {
            while (await pull()) {
              const turn = loopTurn();
              if (turn) await turn;
              // Backpressure reaches the provider: nothing more is pulled while the client is not reading,
              // nor while a piece waiting for its turn holds its share.
              if (this.paused) await this.resumed(abort.signal);
              if (fetch.heldBytes >= lookAheadBytes) await fetch.turn(abort.signal);
              if (abort.signal.aborted) break;
            }
          } finally {
            // As `for await` would: the provider's cleanup runs (a finished generator ignores it).
            await blocks.return?.();
          }
        });
      } catch (error) {
        fetch.finish(error);
      } finally {
        this.abort.signal.removeEventListener('abort', onAbort);
        fetch.finish();
      }
    })();
    this.fetches.add(done);
    void done.then(() => this.fetches.delete(done));
    return fetch;
  }

  /**
   * Speak one piece: first what it buffered while earlier pieces played (a block at a time, so
   * a pause holds the rest back), then its blocks as they arrive, handed over by its own
   * request loop with no queue in between. Resolves when the piece's audio ends; throws its failure.
   */
  private async play(fetch: PieceFetch, afterBlock: () => void): Promise<void> {
    this.playing = fetch;
    this.reportQueued();
    const take = (block: PcmBlock): void | Promise<void> => {
      const taking = this.take(block);
      if (taking) return taking.then(afterBlock);
      afterBlock();
    };
    for (let block = fetch.shift(); block; block = fetch.shift()) {
      if (this.abort.signal.aborted) return;
      const taking = take(block);
      if (taking) await taking;
      const turn = loopTurn();
      if (turn) await turn;
      if (this.paused) await this.resumed(this.abort.signal);
    }
    if (!this.abort.signal.aborted) await fetch.handTo(take);
  }

  /**
   * One upstream context for the whole utterance: text goes in as the client sends it,
   * audio comes out concurrently. When all text given so far is written and flushed, the
   * session hears UPSTREAM_AWAITING_TEXT after each audio block, so it sits in
   * `awaitingText` (text-idle timer) rather than mistaking the pause for a stalled upstream.
   */
  private async runTextStream(open: NonNullable<TtsProvider['openTextStream']>): Promise<void> {
    const route = this.route!;
    const splitter = this.splitter!;
    const text: TextStream = open({ voice: route.providerVoice, signal: this.abort.signal });
    let audioOver = false;
    const pumpText = async () => {
      let unflushed = false;
      while (!this.abort.signal.aborted && !audioOver) {
        const piece = splitter.next();
        if (piece !== null) {
          text.write(piece);
          unflushed = true;
          continue;
        }
        if (splitter.done) {
          text.end();
          return;
        }
        if (unflushed) text.flush();
        unflushed = false;
        this.awaitingText = true;
        this.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: this.input.stream });
        await this.sleep();
        this.awaitingText = false;
      }
    };
    const pump = pumpText();
    pump.catch(() => {}); // observed by `await pump` below; this only keeps an early exit from leaving it unhandled
    try {
      await this.guarded(this.abort.signal, () =>
        this.consume(text.audio, () => {
          if (!this.awaitingText) return;
          this.emitFrames(this.drainTail(false));
          this.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: this.input.stream });
        }),
      );
    } finally {
      audioOver = true;
      text.close();
      this.wake();
    }
    await pump;
  }

  private guarded(signal: AbortSignal, call: () => Promise<void>): Promise<void> {
    return this.route?.guard ? this.route.guard.guard(signal, call) : call();
  }

  private async consume(audio: AsyncIterable<PcmBlock>, afterBlock: () => void): Promise<void> {
    const blocks = audio[Symbol.asyncIterator]();
    try {
      // Not `for await`: a block taken is let go of before the wait for the next (../providers/iteration.ts).
      let block = await nextItem(blocks);
      while (block) {
        if (this.abort.signal.aborted) return;
        const taking = this.take(block);
        block = null;
        if (taking) await taking;
        afterBlock();
        const turn = loopTurn();
        if (turn) await turn;
        // Backpressure: do not pull more from the provider while the client is not reading.
        if (this.paused) await this.resumed(this.abort.signal);
        block = await nextItem(blocks);
      }
    } finally {
      // As `for await` would: the provider's cleanup runs (a finished generator ignores it).
      await blocks.return?.();
    }
  }

  /**
   * One block of provider audio into wire frames, sent at once. Synchronous unless the block
   * comes at a new sample rate, whose resampler is created first.
   */
  private take(block: PcmBlock): void | Promise<void> {
    if (this.abort.signal.aborted) return;
    if (block.sampleRate !== this.input.sampleRate && this.resampler?.fromRate !== block.sampleRate) {
      return this.switchResampler(block.sampleRate).then(() => this.take(block));
    }
    const pcm = block.sampleRate === this.input.sampleRate ? block.samples : this.resampler!.process(block.samples);
    const frames = this.chunker.push(pcm);
    // The first audio goes out as soon as it exists: filling a whole frame first would add
    // up to one frame's duration to the time to first audio when the upstream streams in real time.
    const partial = this.audioSent || frames.length > 0 ? null : this.chunker.flush();
    if (partial) frames.push(partial);
    this.emitFrames(frames);
  }

  private async switchResampler(rate: number): Promise<void> {
    const tail = this.resampler?.flush();
    this.resampler?.destroy();
    this.resampler = null;
    if (tail && tail.length > 0) this.emitFrames(this.chunker.push(tail));
    const resampler = await StreamResampler.create(rate, this.input.sampleRate);
    if (this.abort.signal.aborted || this.settled) resampler.destroy();
    else this.resampler = resampler;
  }

  /** What the resampler and chunker still hold. */
  private drainTail(end: boolean): Int16Array[] {
    const frames: Int16Array[] = [];
    if (end && this.resampler) frames.push(...this.chunker.push(this.resampler.flush()));
    const last = this.chunker.flush();
    if (last) frames.push(last);
    return frames;
  }

  private emitFrames(frames: Int16Array[]): void {
    const { lane, sessionId, stream } = this.input;
    const write = this.options.writeAudio;
    for (const pcm of frames) {
      if (this.abort.signal.aborted) return;
      if (pcm.length === 0) continue;
      this.audioSent = true;
      // Straight out while the session holds the lane open; as an event whenever the chunk could
      // change its state (the first one, the first after a wait for text) or after its end.
      const seq = write ? lane.pass(pcm) : -1;
      if (seq >= 0) write!(sessionId, stream, seq, pcm);
      else this.sendBack({ type: 'UPSTREAM_AUDIO', stream, pcm });
    }
  }

  /** Backpressure: returns once the client reads again, or `signal` aborted. */
  private async resumed(signal: AbortSignal): Promise<void> {
    while (this.paused && !signal.aborted) await this.sleep();
  }

  /** Wait for any change (text, resume, cancel); callers re-check their own condition. */
  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      this.wakers.add(resolve);
    });
  }

  private wake(): void {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }

  /**
   * Tell the session whether the piece it waits for waits for a provider slot (a busy worker
   * pool), so it does not take the wait for a stalled upstream. Only once audio started (before,
   * the first-audio deadline applies) and not while paused (the session is not timing the
   * upstream then; RESUME reports again).
   */
  private reportQueued(): void {
    const queued = this.audioSent && !this.paused && this.playing?.queued === true && !this.abort.signal.aborted;
    if (queued === this.queuedReported) return;
    this.queuedReported = queued;
    this.sendBack({ type: queued ? 'UPSTREAM_QUEUED' : 'UPSTREAM_DEQUEUED', stream: this.input.stream });
  }
}

type Take = (block: PcmBlock) => void | Promise<void>;

/**
 * One text piece's upstream request: audio buffered as it arrives until the piece's turn, then
 * handed to the player as it arrives. Ends once, normally or with the request's failure.
 */
class PieceFetch {
  private readonly early: PcmBlock[] = [];
  /** Bytes in `early`. */
  heldBytes = 0;
  /** The request waits for a provider slot (reported by the provider). */
  queued = false;
  private taker: Take | null = null;
  private ended = false;
  private end!: (failure?: unknown) => void;
  private readonly over = new Promise<void>((resolve, reject) => {
    this.end = (failure) => (failure === undefined ? resolve() : reject(failure));
  });
  private turnWaiter: (() => void) | null = null;

  constructor(
    private readonly abort: AbortController,
    private readonly onHeld: ((deltaBytes: number) => void) | undefined,
    /** Non-space characters of the piece's text. */
    readonly chars: number,
  ) {
    this.over.catch(() => {}); // observed by whoever plays the piece; a piece cancelled unplayed has no one
  }

  /** A block from the request: taken now if the piece is playing, else kept for its turn. */
  push(block: PcmBlock): void | Promise<void> {
    if (this.ended) return;
    if (this.taker) return this.taker(block);
    // Kept for seconds: copied out of Node's buffer pool, where one small slice held that long
    // keeps its whole 8 KiB slab alive (several times the audio itself, per piece waiting).
    this.early.push({ samples: block.samples.slice(), sampleRate: block.sampleRate });
    this.hold(block.samples.byteLength);
  }

  /** The next block that arrived before the piece's turn. */
  shift(): PcmBlock | undefined {
    const block = this.early.shift();
    if (block) this.hold(-block.samples.byteLength);
    return block;
  }

  /** Resolves once the piece is playing (or over, or `signal` aborted). */
  turn(signal: AbortSignal): Promise<void> {
    if (this.taker || this.ended || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        this.turnWaiter = null;
        resolve();
      };
      this.turnWaiter = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** From now on, blocks go straight to `take`. Resolves when the request ends; rejects with its failure. */
  handTo(take: Take): Promise<void> {
    if (!this.ended) this.taker = take;
    this.turnWaiter?.();
    return this.over;
  }

  /** No more blocks; with a failure, the player throws it. Idempotent. */
  finish(failure?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.taker = null;
    this.turnWaiter?.();
    this.end(failure ?? undefined);
  }

  cancel(): void {
    this.abort.abort(releasedReason);
    this.finish();
    this.drop();
  }

  /** Let go of what was kept for a turn that will not come. */
  drop(): void {
    this.early.length = 0;
    this.hold(-this.heldBytes);
  }

  private hold(deltaBytes: number): void {
    if (deltaBytes === 0) return;
    this.heldBytes += deltaBytes;
    this.onHeld?.(deltaBytes);
  }
}

export function toWireError(error: unknown): WireError {
  if (error instanceof ProviderError) {
    return {
      code: error.code,
      message: error.message,
      ...(error.retryAfterMs !== undefined ? { retryAfterMs: Math.ceil(error.retryAfterMs) } : {}),
    };
  }
  return { code: 'internal', message: 'synthesis failed' };
}

/** The `upstream` actor logic the speaker machine invokes, bound to the server's providers. */
export function createSynthesisLogic(options: SynthesisOptions) {
  return fromCallback<UpstreamCommand, UpstreamInput>(({ input, sendBack, receive }) => {
    options.onJobStart?.();
    const job = new UtteranceJob(input, options.resolveVoice(input.voice), options, sendBack as SendBack);
    receive((cmd) => job.command(cmd));
    void job.run();
    return () => job.release();
  });
}
