// The turn chart's `reply` actor: one language-model request for one reply. It builds the
// request from the session's conversation (what the user said, what they heard of earlier
// replies), streams the model's text back as REPLY_DELTA, and ends with exactly one REPLY_DONE
// or REPLY_ERROR. The turn's `writing` state owns it: stopping the actor aborts the request.
import { fromCallback } from 'xstate';
import type { ReplyInput } from '../../machines/turn.machine.js';
import type { ReplyEvent, WireError } from '../../machines/types.js';
import { errorTable } from '../../machines/errors.js';
import type { Conversation } from './conversation.js';
import { ChatModelError, type ChatModel } from './types.js';

export interface ReplyActorOptions {
  model: ChatModel;
  /** The session's conversation (kept by the engine with the session), or undefined once it ended. */
  conversation: (sessionId: string) => Conversation | undefined;
  /** Observability hooks: the request started, its first text came, it failed. */
  onStart?: (sessionId: string, turn: string) => void;
  /** The request is over and released (once per onStart). */
  onEnd?: () => void;
  onFirstText?: (sessionId: string, turn: string) => void;
  onError?: (error: WireError) => void;
}

/** A model failure as the client sees it: the table's message (an upstream's text may be internal). */
function replyErrorOf(error: unknown): WireError {
  if (error instanceof ChatModelError) {
    return { code: error.code, message: errorTable[error.code].message, ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}) };
  }
  return { code: 'model_failed', message: errorTable.model_failed.message };
}

export function createReplyActor(options: ReplyActorOptions) {
  return fromCallback<{ type: 'NONE' }, ReplyInput>(({ input, sendBack }) => {
    const abort = new AbortController();
    const send = (event: ReplyEvent) => {
      if (!abort.signal.aborted) sendBack(event);
    };
    const conversation = options.conversation(input.sessionId);
    const messages = conversation?.messages(input.agent.instructions) ?? [{ role: 'user' as const, content: input.transcript }];
    options.onStart?.(input.sessionId, input.turn);
    const over = (async () => {
      let first = true;
      try {
        for await (const text of options.model.stream({ messages, signal: abort.signal })) {
          if (abort.signal.aborted) return;
          if (!text) continue;
          if (first) {
            first = false;
            options.onFirstText?.(input.sessionId, input.turn);
          }
          send({ type: 'REPLY_DELTA', text });
        }
        send({ type: 'REPLY_DONE' });
      } catch (error) {
        if (abort.signal.aborted) return;
        const wire = replyErrorOf(error);
        options.onError?.(wire);
        send({ type: 'REPLY_ERROR', error: wire });
      }
    })();
    // Counted alive until the model let go of its request (withDeadlines bounds that after an abort).
    void over.finally(() => options.onEnd?.());
    // Idempotent: aborting twice is harmless, and the model's iteration ends without an error.
    return () => abort.abort();
  });
}
