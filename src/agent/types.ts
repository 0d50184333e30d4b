// What every language model behind the agent turn implements. The turn statechart decides
// when a reply starts, is cut short or is thrown away; a ChatModel only writes text while it
// is asked to. Every model the engine uses goes through `withDeadlines` (./deadlines.ts), so
// a model that never answers, or stops half way, ends its turn in bounded time.
import type { ErrorCode } from '../../machines/types.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatRequest {
  /** The whole context of this reply, oldest first (the system instructions, if any, first). */
  messages: readonly ChatMessage[];
  /**
   * Aborted when the reply is no longer wanted (barge-in, stop, superseded, session gone):
   * the iteration then ends promptly WITHOUT an error, and the upstream request is released.
   */
  signal: AbortSignal;
}

/**
 * One reply is one `stream()` call: it yields non-empty text deltas in order and
 * - returns when the model finished its reply (the joined deltas are the reply),
 * - throws a ChatModelError when it failed (exactly once; nothing is yielded after),
 * - returns, without throwing, once `signal` is aborted.
 * Ending the iteration early (`break`, `return()`) releases the request before `return()`
 * settles. Deltas are as the model writes them: words, parts of words, punctuation.
 */
export interface ChatModel {
  /** For logs and the start-up line: `groq:llama-3.3-70b-versatile`, `echo`, … Never a key. */
  readonly name: string;
  stream(request: ChatRequest): AsyncIterable<string>;
}

/** The codes a model's failure carries (all in the one error table, machines/errors.ts). */
export type ChatModelErrorCode = Extract<ErrorCode, 'model_unavailable' | 'model_busy' | 'model_failed' | 'model_timeout'>;

/** A typed model failure: the turn ends `failed` with this code. */
export class ChatModelError extends Error {
  constructor(
    readonly code: ChatModelErrorCode,
    message: string,
    /** With `model_busy`: how long the upstream asked us to wait. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ChatModelError';
  }
}

/**
 * How long a reply may take, part of the port's contract. A voice turn is a conversation
 * with a person waiting: past these the turn fails with `model_timeout` rather than leave
 * the user in silence.
 */
export interface ChatDeadlines {
  /** From the request to the first text (default 8 s). */
  firstTokenMs: number;
  /** Between two pieces of text, and from the last one to the end (default 5 s). */
  betweenTokensMs: number;
  /** The whole reply, first request to last text (default 60 s). */
  wholeReplyMs: number;
}

export const defaultChatDeadlines: Readonly<ChatDeadlines> = { firstTokenMs: 8_000, betweenTokensMs: 5_000, wholeReplyMs: 60_000 };
