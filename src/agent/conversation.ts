// One session's conversation with the model: what the user said and what the user HEARD of
// each reply, bounded, turned into the messages of the next request. What the model wrote
// but the user never heard is not kept: the next reply must not build on words nobody heard.
//
// Bounds: at most `maxTurns` turns and `maxChars` characters of history; the oldest turns go
// first, whole (a user message with its reply), so the history never starts with a reply to
// a question that is gone. The newest turn is always kept, and the instructions are always
// sent first; each text is also capped on the way in.
//
// An interrupted reply goes in as the heard text, an ellipsis, and a short bracketed note
// (`It is half past… [interrupted by the user]`). The ellipsis alone is ambiguous (models use
// it for style); the note tells the model the user did not hear the rest, so it neither
// assumes the rest was said nor repeats it from the start. It is short and fixed so the model
// is unlikely to mistake it for something to imitate, and it sits on the assistant's own
// message, where it describes that message. A reply the user heard nothing of leaves no
// assistant message at all.
//
// Consecutive user messages (a turn superseded before its reply began, or one heard of
// nothing) are joined into one when the messages are built: several chat templates served
// by vLLM and others refuse two user messages in a row.
import type { ChatMessage } from './types.js';

export interface ConversationLimits {
  /** Turns kept (default 20). */
  maxTurns?: number;
  /** Characters of history kept, instructions not counted (default 12 000, a few thousand tokens). */
  maxChars?: number;
  /** Longest single text kept, user words or heard reply (default 2000). */
  maxTextChars?: number;
  /** Longest instructions sent (default 8000); past it they are cut. */
  maxInstructionChars?: number;
}

/** Put after the heard part of an interrupted reply. */
export const interruptedNote = '… [interrupted by the user]';

/** One turn as kept (and as a cluster records it, to move the session to another gateway). */
export interface Turn {
  id: string;
  user: string;
  /** What the user heard of the reply; null: no reply heard (yet). */
  heard: string | null;
  interrupted: boolean;
}

export class Conversation {
  private readonly turns: Turn[] = [];
  private readonly maxTurns: number;
  private readonly maxChars: number;
  private readonly maxTextChars: number;
  private readonly maxInstructionChars: number;

  constructor(limits: ConversationLimits = {}) {
    this.maxTurns = Math.max(1, limits.maxTurns ?? 20);
    this.maxChars = Math.max(1, limits.maxChars ?? 12_000);
    this.maxTextChars = Math.max(1, limits.maxTextChars ?? 2_000);
    this.maxInstructionChars = Math.max(0, limits.maxInstructionChars ?? 8_000);
  }

  /** The user's final words of `turn`. Empty text is no turn (the contract's `empty`); a repeated turn id replaces its text. */
  userSaid(turn: string, text: string): void {
    const words = text.trim().slice(0, this.maxTextChars);
    if (!words) return;
    const existing = this.turns.find((t) => t.id === turn);
    if (existing) existing.user = words;
    else this.turns.push({ id: turn, user: words, heard: null, interrupted: false });
    this.trim();
  }

  /**
   * What the user heard of `turn`'s reply, and whether they cut it short. Only that text is
   * kept. A turn no longer held (dropped by the bounds, never said) is ignored; a second call
   * for the same turn replaces the first.
   */
  assistantHeard(turn: string, heardText: string, interrupted: boolean): void {
    const entry = this.turns.find((t) => t.id === turn);
    if (!entry) return;
    const heard = heardText.trim().slice(0, this.maxTextChars);
    entry.heard = heard || null;
    entry.interrupted = heard ? interrupted : false;
    this.trim();
  }

  /** The messages of the next request: the instructions (if any) first, then the history, oldest first. */
  messages(instructions?: string): ChatMessage[] {
    const out: ChatMessage[] = [];
    const system = instructions?.trim().slice(0, this.maxInstructionChars);
    if (system) out.push({ role: 'system', content: system });
    for (const turn of this.turns) {
      const last = out[out.length - 1];
      if (last?.role === 'user') last.content = `${last.content}\n${turn.user}`;
      else out.push({ role: 'user', content: turn.user });
      if (turn.heard) out.push({ role: 'assistant', content: turn.interrupted ? `${turn.heard}${interruptedNote}` : turn.heard });
    }
    return out;
  }

  /** The turns held, as plain data (a moved session's next gateway restores them). */
  saved(): Turn[] {
    return this.turns.map((t) => ({ ...t }));
  }

  /** Take back turns `saved()` gave (from a record: each checked, then the bounds applied). */
  restore(turns: unknown): void {
    if (!Array.isArray(turns)) return;
    for (const t of turns as Array<Partial<Turn>>) {
      if (typeof t?.id !== 'string' || typeof t.user !== 'string') continue;
      this.userSaid(t.id, t.user);
      if (typeof t.heard === 'string') this.assistantHeard(t.id, t.heard, t.interrupted === true);
    }
  }

  /** Turns held now. */
  get size(): number {
    return this.turns.length;
  }

  clear(): void {
    this.turns.length = 0;
  }

  private trim(): void {
    while (this.turns.length > this.maxTurns) this.turns.shift();
    let chars = this.turns.reduce((sum, t) => sum + cost(t), 0);
    while (this.turns.length > 1 && chars > this.maxChars) chars -= cost(this.turns.shift()!);
  }
}

function cost(turn: Turn): number {
  return turn.user.length + (turn.heard ? turn.heard.length + (turn.interrupted ? interruptedNote.length : 0) : 0);
}
