// Pure bookkeeping for a session's utterances: which are queued, which one plays,
// which ids were used, and how an end record is built. No I/O, no XState.
import type {
  AudioLane,
  EndReason,
  EndRecord,
  ErrorCode,
  SessionLimits,
  SpeakRequest,
  UtteranceStats,
  WireError,
} from './types.js';

export interface QueuedUtterance {
  id: string;
  stream: number;
  voice: string;
  text: string;
  final: boolean;
  acceptedAt: number;
}

export interface CurrentUtterance {
  id: string;
  stream: number;
  voice: string;
  /** Text queued before the upstream started; later appends go straight to the upstream. */
  initialText: string;
  /** Characters received so far, appends included (the limit applies to the whole utterance). */
  textChars: number;
  final: boolean;
  acceptedAt: number;
  /** True once its end record exists (the session may still be releasing its upstream). */
  ended: boolean;
  outlet: UtteranceOutlet;
}

/**
 * Non-space characters a second that any voice speaks at least (about 130 words a minute; voices
 * speak 150-180): what counts as heard of a piece whose audio is still being sent.
 */
export const slowestSpeechCharsPerSecond = 10;

/**
 * Where one utterance's audio leaves: its sequence numbers, its tallies, its gate and its seal.
 * The speaker chart decides and the outlet obeys: the states in which a chunk changes nothing
 * but the tallies (`streaming.flowing`, `streaming.paused.receiving`) open the gate on entry and
 * close it on exit; while it is open the upstream `pass`es chunks itself, skipping one event
 * through the machine per chunk. The utterance's end seals it for good (before its speak.end
 * goes out), after which nothing is numbered or passed. Deliberately mutable: audio arrives
 * tens of times a second per session, and copying the machine context for every chunk cost more
 * than the whole rest of the transition. It lives and dies with its utterance.
 */
export class UtteranceOutlet implements AudioLane {
  private seq = 0;
  private bytes = 0;
  private samples = 0;
  private firstAudioAt: number | null = null;
  /** When the upstream last showed life (a chunk, or the client draining): the gap clock's start. */
  private lastLifeAt: number;
  private gate: 'closed' | 'open' | 'sealed' = 'closed';
  /**
   * The text pieces whose audio went out, in order: where each starts (samples numbered before
   * it), its non-space characters, and where it ends once all its audio went (-1 until then).
   * At most one entry per sentence of the utterance's text, which is bounded.
   */
  private readonly pieces: { start: number; chars: number; end: number }[] = [];

  /** The session's clock (the machine's `now`). */
  constructor(private readonly now: () => number) {
    this.lastLifeAt = now();
  }

  /** Chunks may pass without the machine (until `close` or `seal`). */
  open(): void {
    if (this.gate === 'closed') this.gate = 'open';
  }

  close(): void {
    if (this.gate === 'open') this.gate = 'closed';
  }

  /** The utterance ended: nothing more is numbered or passed. Idempotent. */
  seal(): void {
    this.gate = 'sealed';
  }

  get isOpen(): boolean {
    return this.gate === 'open';
  }

  get isSealed(): boolean {
    return this.gate === 'sealed';
  }

  /** A chunk the machine sends itself: its seq, or -1 once sealed. */
  number(pcm: Int16Array): number {
    if (this.gate === 'sealed') return -1;
    const seq = this.seq++;
    const now = this.now();
    this.bytes += pcm.byteLength;
    this.samples += pcm.length;
    this.firstAudioAt ??= now;
    this.lastLifeAt = now;
    return seq;
  }

  /** A chunk the upstream writes itself: its seq while the gate is open, else -1 (send it as an event). */
  pass(pcm: Int16Array): number {
    return this.gate === 'open' ? this.number(pcm) : -1;
  }

  startPiece(chars: number): void {
    if (this.gate === 'sealed') return;
    this.endPiece();
    this.pieces.push({ start: this.samples, chars, end: -1 });
  }

  endPiece(): void {
    const last = this.pieces[this.pieces.length - 1];
    if (last && last.end < 0) last.end = this.samples;
  }

  /**
   * How much the user can have played: the client's report when there is one, else what was
   * sent, and never more than real time since the first audio went out (audio plays no faster).
   */
  playedMs(sampleRate: number, reportedMs: number | undefined): number {
    const sentMs = (this.samples / sampleRate) * 1000;
    if (reportedMs !== undefined) return Math.min(sentMs, reportedMs);
    return this.firstAudioAt === null ? 0 : Math.min(sentMs, this.now() - this.firstAudioAt);
  }

  /**
   * Non-space characters heard by `playedMs`, at most: every piece whose audio was wholly played,
   * plus the played share (rounded down) of a piece whose audio was all sent. Of a piece still
   * being sent (its length in time not known yet), only what the slowest speech says in the time
   * it played: heard must never run ahead of what was said.
   */
  heardChars(playedMs: number, sampleRate: number): number {
    const played = (playedMs / 1000) * sampleRate;
    let chars = 0;
    for (const piece of this.pieces) {
      if (played <= piece.start) break;
      if (piece.end < 0) {
        chars += Math.min(piece.chars, Math.floor(((played - piece.start) / sampleRate) * slowestSpeechCharsPerSecond));
        break;
      }
      // A piece that made no audio said nothing (punctuation, a provider's empty answer).
      if (piece.end === piece.start) continue;
      if (played >= piece.end) chars += piece.chars;
      else chars += Math.floor((piece.chars * (played - piece.start)) / (piece.end - piece.start));
    }
    return chars;
  }

  /** The gap clock starts over now. */
  restartGapClock(): void {
    this.lastLifeAt = this.now();
  }

  /** Milliseconds since the upstream last showed life. */
  quietFor(): number {
    return this.now() - this.lastLifeAt;
  }

  /**
   * What the client still plays of this utterance now: the sent audio (whole ms) and how much of
   * it is left, assuming playback started with the first audio and runs in real time.
   */
  playsOn(sampleRate: number): { sentMs: number; playsForMs: number } {
    const sentMs = Math.floor((this.samples * 1000) / sampleRate);
    return { sentMs, playsForMs: Math.max(0, Math.ceil(sentMs - this.playedMs(sampleRate, undefined))) };
  }

  /** The utterance's figures for its speak.end. */
  stats(acceptedAt: number, sampleRate: number): UtteranceStats {
    return {
      chunks: this.seq,
      bytes: this.bytes,
      firstAudioMs: this.firstAudioAt === null ? null : Math.round(this.firstAudioAt - acceptedAt),
      durationMs: Math.round((this.samples / sampleRate) * 1000),
    };
  }
}

/**
 * The ids a session has used (the last `limit` of them), each `open` while its text can
 * still grow, so appends that crossed a STOP are absorbed quietly. Deliberately mutable,
 * like UtteranceOutlet: it is consulted on every speak frame, and copying a 1 024-entry list
 * per utterance cost more than the rest of the utterance's transitions together. Only
 * the machine's actions write it (never its guards), and it belongs to one session.
 */
export class IdMemory {
  // Made with the first id: a session that never spoke holds no table.
  private ids: Map<string, boolean> | null = null;
  /** Bumped by every write, so a verdict drawn from this memory can tell it is still current. */
  private writes = 0;

  constructor(readonly limit: number) {}

  get version(): number {
    return this.writes;
  }

  get size(): number {
    return this.ids?.size ?? 0;
  }

  /** Whether `id` is remembered as still open; undefined when it is not remembered at all. */
  isOpen(id: string): boolean | undefined {
    return this.ids?.get(id);
  }

  /** Remember `id` as the newest entry, forgetting the oldest beyond the limit. */
  remember(id: string, open: boolean): void {
    this.writes++;
    this.ids ??= new Map();
    this.ids.delete(id);
    this.ids.set(id, open);
    if (this.ids.size <= this.limit) return;
    for (const oldest of this.ids.keys()) {
      if (this.ids.size <= this.limit) break;
      this.ids.delete(oldest);
    }
  }

  /** Its text is complete: later appends are duplicates. Keeps its age. */
  close(id: string): void {
    this.writes++;
    if (this.ids?.has(id)) this.ids.set(id, false);
  }
}

export type SpeakDecision =
  | { kind: 'accept' }
  | { kind: 'append-current' }
  | { kind: 'append-queued'; index: number }
  | { kind: 'append-ended' }
  | { kind: 'reject'; code: ErrorCode; message: string };

export interface UtteranceBook {
  current: CurrentUtterance | null;
  queue: QueuedUtterance[];
  usedIds: IdMemory;
}

/** Decide what a speak frame means for this session. Total: never throws. */
export function classifySpeak(
  book: UtteranceBook,
  request: SpeakRequest,
  limits: SessionLimits,
  voiceIds: ReadonlySet<string>,
): SpeakDecision {
  const { current, queue } = book;
  if (current && current.id === request.id) {
    if (current.final) return duplicate(request.id);
    if (current.textChars + request.text.length > limits.maxTextChars) return tooLong(limits);
    return { kind: 'append-current' };
  }
  const queuedIndex = queue.findIndex((u) => u.id === request.id);
  if (queuedIndex >= 0) {
    const queued = queue[queuedIndex]!;
    if (queued.final) return duplicate(request.id);
    if (queued.text.length + request.text.length > limits.maxTextChars) return tooLong(limits);
    return { kind: 'append-queued', index: queuedIndex };
  }
  const open = book.usedIds.isOpen(request.id);
  if (open !== undefined) {
    // Text frames for an utterance that was stopped while its text was still open
    // crossed the STOP on the wire: absorb them quietly rather than erroring.
    if (open) return { kind: 'append-ended' };
    return duplicate(request.id);
  }
  if (request.text.length > limits.maxTextChars) return tooLong(limits);
  if (request.voice !== undefined && !voiceIds.has(request.voice)) {
    return {
      kind: 'reject',
      code: 'unknown_voice',
      message: `unknown voice "${request.voice}"; this session offers: ${[...voiceIds].join(', ')}`,
    };
  }
  if (request.mode === 'enqueue' && queue.length >= limits.maxQueued) {
    return {
      kind: 'reject',
      code: 'queue_full',
      message: `at most ${limits.maxQueued} utterances may wait in the queue`,
    };
  }
  return { kind: 'accept' };
}

function duplicate(id: string): SpeakDecision {
  return { kind: 'reject', code: 'duplicate_id', message: `utterance id "${id}" was already used in this session` };
}

function tooLong(limits: SessionLimits): SpeakDecision {
  return {
    kind: 'reject',
    code: 'text_too_long',
    message: `an utterance may hold at most ${limits.maxTextChars} characters`,
  };
}

export function startCurrent(next: QueuedUtterance, now: () => number): CurrentUtterance {
  return {
    id: next.id,
    stream: next.stream,
    voice: next.voice,
    initialText: next.text,
    textChars: next.text.length,
    final: next.final,
    acceptedAt: next.acceptedAt,
    ended: false,
    outlet: new UtteranceOutlet(now),
  };
}

export function endOfCurrent(
  current: CurrentUtterance,
  reason: EndReason,
  cause: string,
  sampleRate: number,
  error?: WireError,
  /** What the user heard of it (UtteranceOutlet.heardChars); the speaker knows the playback reports. */
  heardChars = 0,
): EndRecord {
  return {
    id: current.id,
    stream: current.stream,
    reason,
    ...(error && (reason === 'failed' || reason === 'timeout') ? { error } : {}),
    stats: current.outlet.stats(current.acceptedAt, sampleRate),
    cause,
    heardChars,
  };
}

export function endOfQueued(queued: QueuedUtterance, reason: EndReason, cause: string, error?: WireError): EndRecord {
  return {
    id: queued.id,
    stream: queued.stream,
    reason,
    ...(error && (reason === 'failed' || reason === 'timeout') ? { error } : {}),
    stats: { chunks: 0, bytes: 0, firstAudioMs: null, durationMs: 0 },
    cause,
    heardChars: 0,
  };
}
