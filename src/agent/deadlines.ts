// The deadlines of the ChatModel contract, enforced around any model: first text, gap between
// texts, whole reply. Each expiry aborts the model's request and ends the iteration with one
// `model_timeout` that names the deadline. An abort from outside ends the iteration promptly
// and quietly, even if the wrapped model is slow to notice: the wrapper stops waiting on it
// at once and gives it a short grace to release its request.
import { ChatModelError, defaultChatDeadlines, type ChatDeadlines, type ChatModel, type ChatRequest } from './types.js';

export interface DeadlineOptions extends Partial<ChatDeadlines> {
  /**
   * How long ending the iteration waits for the wrapped model to let go of its request after
   * it was aborted (default 1 s). A well-behaved model takes a few ms; past this the wrapper
   * stops waiting, so a model that ignores its signal cannot hold a turn.
   */
  releaseGraceMs?: number;
}

/** Settles a wait early: the outer signal aborted, or a deadline fired. */
const interrupted = Symbol('interrupted');

export function withDeadlines(model: ChatModel, options: DeadlineOptions = {}): ChatModel {
  const limits: ChatDeadlines = {
    firstTokenMs: options.firstTokenMs ?? defaultChatDeadlines.firstTokenMs,
    betweenTokensMs: options.betweenTokensMs ?? defaultChatDeadlines.betweenTokensMs,
    wholeReplyMs: options.wholeReplyMs ?? defaultChatDeadlines.wholeReplyMs,
  };
  const releaseGraceMs = options.releaseGraceMs ?? 1_000;

  async function* stream({ messages, signal }: ChatRequest): AsyncGenerator<string> {
    if (signal.aborted) return;
    const upstream = new AbortController();
    let failure: ChatModelError | null = null;
    let wake: (() => void) | null = null;
    const stop = () => {
      upstream.abort();
      wake?.();
    };
    const expire = (message: string) => {
      if (failure || signal.aborted) return;
      failure = new ChatModelError('model_timeout', message);
      stop();
    };
    signal.addEventListener('abort', stop, { once: true });
    // The whole-reply clock runs even while the consumer holds a delta: it bounds the turn.
    const whole = setTimeout(() => expire(`${model.name} did not finish its reply within ${limits.wholeReplyMs} ms`), limits.wholeReplyMs);
    const iterator = model.stream({ messages, signal: upstream.signal })[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<string>> | undefined;
    let first = true;
    // Deadlines count only time spent waiting on the model, not time the consumer holds a delta.
    let due = performance.now() + limits.firstTokenMs;
    try {
      for (;;) {
        if (failure) throw failure;
        if (signal.aborted) return;
        const which = first ? `sent no text within ${limits.firstTokenMs} ms` : `sent no more text for ${limits.betweenTokensMs} ms`;
        const timer = setTimeout(() => expire(`${model.name} ${which}`), Math.max(0, due - performance.now()));
        const step = iterator.next();
        pending = step;
        let result: IteratorResult<string> | typeof interrupted;
        try {
          result = await new Promise<IteratorResult<string> | typeof interrupted>((resolve, reject) => {
            wake = () => resolve(interrupted);
            step.then(resolve, reject);
          });
        } catch (error) {
          pending = undefined; // it settled
          if (failure) throw failure;
          if (signal.aborted) return;
          throw asChatModelError(model.name, error);
        } finally {
          clearTimeout(timer);
          wake = null;
        }
        if (result === interrupted) {
          if (failure) throw failure;
          return; // aborted from outside
        }
        pending = undefined;
        if (result.done) return;
        if (failure) throw failure; // the whole-reply clock fired as this delta arrived
        if (signal.aborted) return;
        if (result.value.length === 0) continue;
        first = false;
        yield result.value;
        due = performance.now() + limits.betweenTokensMs;
      }
    } finally {
      clearTimeout(whole);
      signal.removeEventListener('abort', stop);
      upstream.abort();
      await release(iterator, pending, releaseGraceMs);
    }
  }

  return { name: model.name, stream };
}

/** Let the wrapped iteration finish its cleanup (a pending step settles, then `return()`), within a grace. */
async function release(iterator: AsyncIterator<string>, pending: Promise<unknown> | undefined, graceMs: number): Promise<void> {
  const done = (pending ?? Promise.resolve())
    .then(
      () => undefined,
      () => undefined,
    )
    .then(() => iterator.return?.())
    .then(
      () => undefined,
      () => undefined,
    );
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([done, grace]);
  clearTimeout(timer);
}

/** Anything a model throws reaches the turn as a ChatModelError; an unexpected one says nothing more than that. */
function asChatModelError(name: string, error: unknown): ChatModelError {
  if (error instanceof ChatModelError) return error;
  return new ChatModelError('model_failed', `${name} failed unexpectedly`);
}
