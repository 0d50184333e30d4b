// Moving a resumable session to another gateway when the one that owned it died (wire contract
// v2, "Resuming a session"; docs/scaling.md, "Gateway death").
//
// The owner records what the session needs to go on, as it happens: its settings, and each
// accepted utterance's stream, text and end. It does not record audio: in a cluster every
// utterance's audio is already in Redis, in its synthesis jobs' streams, keyed by session, stream
// and piece (src/cluster/synthJobs.ts). Speech is a function of those inputs, so the gateway that
// takes a session over replays the open utterances through its own statechart, which reads the
// same job streams from their start and cuts the same frames; what the client already has
// (its resume cursor) is held back. The client gets the rest, sample-identical, with one end
// each. A fencing number in the record makes the move one-way: the old owner's writes (and its
// cancels of synthesis jobs) are refused once another gateway took over.
import type { AgentSettings, ListenRequest, ServerMessage } from '../../machines/types.js';
import type { JobFence } from '../providers/types.js';
import type { ResumeCursor, ResumeFailure } from './outboundLog.js';

export type SpeakEndMessage = Extract<ServerMessage, { type: 'speak.end' }>;

/** What recreates the session elsewhere (its session.start, as admitted; never a secret). */
export interface MovableSettings {
  sampleRate: number;
  voice?: string;
  listen?: ListenRequest;
  agent?: AgentSettings;
  observe?: boolean;
  /** The digest that names the API key under the per-key cap (null: no key). */
  keyId: string | null;
  windowMs: number;
}

/** One accepted utterance, as its owner recorded it. */
export interface RecordedUtterance {
  stream: number;
  id: string;
  text: string;
  voice?: string;
  final: boolean;
  /** Its speak.end and the last audio seq sent before it (-1: none), once it ended. */
  end?: { message: SpeakEndMessage; lastSeq: number };
}

export interface RecordedSession {
  sessionId: string;
  settings: MovableSettings;
  utterances: RecordedUtterance[];
  /** The agent's conversation (what was said and heard), as `Conversation.saved()` gave it. */
  conversation?: unknown;
}

/** The owner's side: every write is fenced (refused once another gateway took the session). */
export interface SessionRecorder {
  /** The fence that a synthesis job's cancel must still hold (see src/cluster/synthJobs.ts). */
  readonly fence: JobFence;
  accepted(utterance: { stream: number; id: string; text: string; voice: string; final: boolean }): void;
  appended(stream: number, text: string, final: boolean): void;
  /** Audio frame `seq` of `stream` went out (the end records the last one). */
  sent(stream: number, seq: number): void;
  /** The stream's speak.end went out, after its last frame as `sent` told. */
  ended(stream: number, message: SpeakEndMessage): void;
  /** The agent's conversation changed (bounded by its limits): the record keeps the latest. */
  remembered(conversation: unknown): void;
  /** The session ended here: its record goes. Idempotent. */
  release(): void;
  /** This gateway lets go without ending the session (another may take it over). Idempotent. */
  abandon(): void;
}


export type Adoption =
  | { ok: true; session: RecordedSession; recorder: SessionRecorder }
  | { ok: false; reason: ResumeFailure; message: string };

/** Where a cluster keeps its resumable sessions' records (Redis: src/cluster/sessionStore.ts). */
export interface SessionStore {
  /** Record a new resumable session owned here; `onFenced` runs once if another gateway takes it. */
  create(sessionId: string, tokenDigest: Buffer, settings: MovableSettings, onFenced: () => void): SessionRecorder;
  /** Take the session over (its token checked first), or say why not. */
  adopt(sessionId: string, tokenDigest: Buffer, onFenced: () => void): Promise<Adoption>;
}

/** How the adopting gateway brings the client up to date. */
export interface MovePlan {
  /** speak.end messages the client missed, of utterances with no audio missing (sent at once). */
  ends: Array<{ announce: boolean; utterance: RecordedUtterance }>;
  /** Utterances spoken again, in stream order: speak.accepted only if announced, audio after `afterSeq`. */
  replays: Array<{ announce: boolean; afterSeq: number; utterance: RecordedUtterance }>;
}

/**
 * What to replay for a client at `cursor`, from the recorded utterances; or why it cannot be
 * done. Pure: the unit and property tests drive it directly.
 */
export function planMove(utterances: readonly RecordedUtterance[], cursor: ResumeCursor): { ok: true; plan: MovePlan } | { ok: false; reason: ResumeFailure; message: string } {
  const highest = utterances.reduce((max, u) => Math.max(max, u.stream), 0);
  for (const stream of cursor.streams.keys()) {
    if (stream > cursor.lastStream) return { ok: false, reason: 'bad_cursor', message: `stream ${stream} is listed but above lastStream` };
  }
  // Accepted just before its gateway died, and the record never got it: what followed is lost.
  if (cursor.lastStream > highest) return { ok: false, reason: 'frames_gone', message: `stream ${cursor.lastStream} was not recorded before its gateway died` };
  const plan: MovePlan = { ends: [], replays: [] };
  for (const utterance of [...utterances].sort((a, b) => a.stream - b.stream)) {
    const listed = cursor.streams.get(utterance.stream);
    const announce = utterance.stream > cursor.lastStream;
    // The client saw it accepted and ended: nothing of it is owed.
    if (!announce && listed === undefined) continue;
    const afterSeq = listed ?? -1;
    const { end } = utterance;
    if (!end) {
      plan.replays.push({ announce, afterSeq, utterance });
    } else if (afterSeq >= end.lastSeq) {
      plan.ends.push({ announce, utterance });
    } else if (end.message.reason === 'completed') {
      // Its whole audio is in the job streams: speaking it again ends it the same way.
      plan.replays.push({ announce, afterSeq, utterance });
    } else {
      // Cut short at a point the record does not keep the audio of: refuse rather than guess.
      return { ok: false, reason: 'frames_gone', message: `the end of stream ${utterance.stream} (${end.message.reason}) cannot be replayed` };
    }
  }
  return { ok: true, plan };
}
