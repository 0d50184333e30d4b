// The outbound log of a resumable session (wire contract v2, "Resuming a session"): every frame
// the session sent, in order, so that a client whose connection dropped can be given exactly
// what it missed. The client's cursor names streams and seqs only, so the replay is decided per
// stream; control messages that belong to no stream are replayed only when they were written
// after the server saw the drop (before it, the server cannot know whether they arrived).
//
// Bounded two ways: by age (entries older than the resume window are trimmed while a client is
// attached; while detached the window itself bounds the wait) and by bytes (always). What a
// trim removed is remembered per stream, so a resume that would need it is refused with a
// typed reason (`frames_gone`: what the client missed is no longer kept) instead of replaying a stream with a hole in it.
import type { ServerMessage } from '../../machines/types.js';

/** One frame as the session sent it. */
export type OutboundFrame =
  | { kind: 'message'; message: ServerMessage }
  | { kind: 'audio'; stream: number; seq: number; pcm: Int16Array };

/** What the client says it has (session.resume): see docs/protocol.md, "Resuming a session". */
export interface ResumeCursor {
  /** The highest stream the client saw accepted (0: none). */
  lastStream: number;
  /** For each stream it saw accepted and not ended: the last seq it received (-1: none). */
  streams: ReadonlyMap<number, number>;
}

/** Why a resume cannot be honoured; every one is sent as `resume_failed` with this reason. */
export type ResumeFailure = 'unknown_session' | 'wrong_token' | 'frames_gone' | 'bad_cursor' | 'unavailable';

export type ReplayVerdict = { ok: true; frames: OutboundFrame[] } | { ok: false; reason: ResumeFailure; message: string };

/**
 * The interface a store implements (in memory here; a Redis list keyed by session id in a
 * cluster). Appends keep the order of the calls; `replay` answers from what is kept.
 */
export interface OutboundLog {
  append(frame: OutboundFrame): void;
  /** The client's connection dropped: control messages from here on are kept for the next one. */
  markDropped(): void;
  /** A client is attached again: entries age out of the window from here on. */
  markAttached(): void;
  replay(cursor: ResumeCursor): ReplayVerdict;
  /** Streams up to `stream` were accepted before this log began (a session moved from another gateway). */
  inherit(stream: number): void;
  /** Let go of everything kept (the session ended). Idempotent. */
  release(): void;
  /** Bytes held now (audio payloads plus an estimate per message). */
  readonly bytes: number;
}

export interface OutboundLogOptions {
  /** Entries older than this are trimmed while a client is attached. */
  windowMs: number;
  /** Most bytes kept; the oldest entries go first. */
  maxBytes: number;
  /** Milliseconds clock (injectable for tests). */
  now?: () => number;
}

interface Entry {
  frame: OutboundFrame;
  at: number;
  /** Position since the session started (never reused): orders entries against the drop mark. */
  position: number;
  bytes: number;
}

/** What each trimmed stream lost, kept for this many streams (older ones are refused conservatively). */
const lostStreamsKept = 256;
/** What a message costs in the byte budget beyond its JSON (object, entry, array slot). */
const entryOverheadBytes = 64;

const streamOf = (message: ServerMessage): number | undefined =>
  message.type === 'speak.accepted' || message.type === 'speak.end' ? message.stream : undefined;

export class MemoryOutboundLog implements OutboundLog {
  private entries: Entry[] = [];
  /** Index of the first live entry in `entries` (trimming moves it instead of shifting the array). */
  private head = 0;
  private nextPosition = 0;
  private held = 0;
  /** Control messages at or after this position are replayed (set when a drop is seen). */
  private dropMark = Number.POSITIVE_INFINITY;
  private attached = true;
  private highestAccepted = 0;
  /** Position of the latest trimmed control message of no stream (-1: none). */
  private lostNoteAt = -1;
  /** The highest stream that lost any entry to a trim. */
  private lostAbove = 0;
  /** Per stream that lost audio: the last seq trimmed; per stream whose speak.end was trimmed: true. */
  private readonly lostAudioThrough = new Map<number, number>();
  private readonly lostEnd = new Set<number>();
  /** Streams at or below this lost something that is no longer remembered in detail. */
  private forgottenThrough = 0;
  private readonly now: () => number;

  constructor(private readonly options: OutboundLogOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get bytes(): number {
    return this.held;
  }

  append(frame: OutboundFrame): void {
    // Audio is copied: the log outlives the send, and a provider path may reuse its buffers.
    const kept: OutboundFrame = frame.kind === 'audio' ? { ...frame, pcm: frame.pcm.slice() } : frame;
    const bytes = frame.kind === 'audio' ? frame.pcm.byteLength + entryOverheadBytes : JSON.stringify(frame.message).length + entryOverheadBytes;
    if (frame.kind === 'message' && frame.message.type === 'speak.accepted') this.highestAccepted = Math.max(this.highestAccepted, frame.message.stream);
    this.entries.push({ frame: kept, at: this.now(), position: this.nextPosition++, bytes });
    this.held += bytes;
    this.trim();
  }

  markDropped(): void {
    this.attached = false;
    this.dropMark = this.nextPosition;
  }

  inherit(stream: number): void {
    this.highestAccepted = Math.max(this.highestAccepted, stream);
  }

  markAttached(): void {
    this.attached = true;
    this.trim();
  }

  replay(cursor: ResumeCursor): ReplayVerdict {
    this.trim();
    const { lastStream, streams } = cursor;
    if (lastStream > this.highestAccepted) return refuse('bad_cursor', `stream ${lastStream} was never accepted`);
    for (const stream of streams.keys()) {
      if (stream > lastStream) return refuse('bad_cursor', `stream ${stream} is listed but above lastStream`);
    }
    // Refuse when anything the client needs was trimmed: every entry of a stream above
    // lastStream, and the audio after the given seq and the end of every listed stream.
    if (this.lostNoteAt >= this.dropMark) return refuse('frames_gone', 'a message sent after the drop is no longer kept');
    if (this.lostAbove > lastStream) return refuse('frames_gone', `what was sent of stream ${this.lostAbove} is no longer kept`);
    for (const [stream, seq] of streams) {
      const lost = this.lostEnd.has(stream) || (this.lostAudioThrough.get(stream) ?? -1) > seq || stream <= this.forgottenThrough;
      if (lost) return refuse('frames_gone', `what was sent of stream ${stream} after seq ${seq} is no longer kept`);
    }
    const frames: OutboundFrame[] = [];
    for (let i = this.head; i < this.entries.length; i++) {
      const { frame, position } = this.entries[i]!;
      if (frame.kind === 'audio') {
        const listed = streams.get(frame.stream);
        if (frame.stream > lastStream || (listed !== undefined && frame.seq > listed)) frames.push(frame);
        continue;
      }
      const stream = streamOf(frame.message);
      if (stream === undefined) {
        if (position >= this.dropMark) frames.push(frame);
      } else if (frame.message.type === 'speak.accepted') {
        if (stream > lastStream) frames.push(frame);
      } else if (stream > lastStream || streams.has(stream)) {
        frames.push(frame);
      }
    }
    return { ok: true, frames };
  }

  release(): void {
    this.entries = [];
    this.head = 0;
    this.held = 0;
    this.lostAudioThrough.clear();
    this.lostEnd.clear();
  }

  private trim(): void {
    const oldest = this.attached ? this.now() - this.options.windowMs : Number.NEGATIVE_INFINITY;
    while (this.head < this.entries.length) {
      const entry = this.entries[this.head]!;
      if (entry.at >= oldest && this.held <= this.options.maxBytes) break;
      this.forget(entry);
      this.entries[this.head] = undefined as unknown as Entry;
      this.head++;
      this.held -= entry.bytes;
    }
    // Compact once the dead prefix is most of the array (amortised O(1) per entry).
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Remember what a trimmed entry was, so a resume that needs it is refused. */
  private forget({ frame, position }: Entry): void {
    const stream = frame.kind === 'audio' ? frame.stream : streamOf(frame.message);
    if (stream === undefined) {
      this.lostNoteAt = position;
      return;
    }
    this.lostAbove = Math.max(this.lostAbove, stream);
    if (frame.kind === 'audio') this.lostAudioThrough.set(stream, frame.seq);
    else if (frame.message.type === 'speak.end') this.lostEnd.add(stream);
    // Bounded: the oldest streams' details go, and streams up to them count as lost.
    while (this.lostAudioThrough.size > lostStreamsKept) {
      const oldest = this.lostAudioThrough.keys().next().value as number;
      this.lostAudioThrough.delete(oldest);
      this.forgottenThrough = Math.max(this.forgottenThrough, oldest);
    }
    for (const s of this.lostEnd) {
      if (this.lostEnd.size <= lostStreamsKept) break;
      this.lostEnd.delete(s);
      this.forgottenThrough = Math.max(this.forgottenThrough, s);
    }
  }
}

function refuse(reason: ResumeFailure, message: string): ReplayVerdict {
  return { ok: false, reason, message };
}
