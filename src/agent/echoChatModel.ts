// The embedded default when no language model is configured: it answers by repeating what it
// heard ("You said: …"), streamed a word at a time like a real model, so the offline demo and
// the tests exercise the whole loop (hearing, replying as it is written, speaking, barge-in)
// without a network or a key.
import type { ChatModel, ChatRequest } from './types.js';

export interface EchoChatModelOptions {
  /** Put before the user's words (default "You said: "). */
  prefix?: string;
  /** What it says when the conversation holds no user words (default "I did not catch that."). */
  fallback?: string;
  /** Pause before each word (default 0: no timers, each word still a delta of its own). Deterministic. */
  wordDelayMs?: number;
  /** Longest echoed reply in characters (default 2000): a reply is a buffer too. */
  maxChars?: number;
}

export function echoChatModel(options: EchoChatModelOptions = {}): ChatModel {
  const prefix = options.prefix ?? 'You said: ';
  const fallback = options.fallback ?? 'I did not catch that.';
  const wordDelayMs = options.wordDelayMs ?? 0;
  const maxChars = options.maxChars ?? 2_000;

  async function* stream({ messages, signal }: ChatRequest): AsyncGenerator<string> {
    const heard = [...messages].reverse().find((m) => m.role === 'user')?.content.trim() ?? '';
    const reply = (heard ? `${prefix}${heard}` : fallback).slice(0, maxChars);
    for (const word of words(reply)) {
      if (wordDelayMs > 0 && !(await pause(wordDelayMs, signal))) return;
      if (signal.aborted) return;
      yield word;
    }
  }

  return { name: 'echo', stream };
}

/** Words with the spaces after them, so the deltas join back to the exact text. */
export function words(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? [];
}

/** Wait `ms`, or less when `signal` aborts; true when the wait ran its course. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
