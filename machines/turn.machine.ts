// The turn statechart: one actor per session that asked for the agent (wire contract v2, "The
// agent turn"), invoked by the connection beside the speaker and the listener. It hears each
// user turn's final transcript (from the listener, through the connection), has a reply written
// (the `reply` actor: a language model, provided by src/), hands the reply's text to the speaker
// as it is written (utterance `reply:<turn>`, through the connection), and ends every user turn
// with exactly one `turn.end`.
//
// Ownership: the model request of the reply being written is the `reply` actor invoked by
// `replying.writing`; leaving that state (done, failed, stopped, superseded, interrupted,
// session gone) stops it, which aborts the request. Nothing else is held.
//
// Rules:
// - A reply is `thinking` until its first text is handed to the speaker. While the user is
//   speaking (a turn started and its final has not come), nothing is handed: a reply never
//   starts over the user. If that speech turns out to be words, the reply is `superseded`
//   before it began; if it was nothing (empty final: a cough, a false interruption), the held
//   reply goes on.
// - Once handed, the reply plays until it ends; the user stops it by barge-in (the listener's
//   interruption threshold; the speaker ends it `interrupted`) or, when their speech was too
//   short for barge-in but still words, by the words themselves (the turn interrupts it and
//   answers them next).
// - Completion: every user turn's `turn.end` leaves through the one action `endTurn`. A reply's
//   end is decided by its utterance's one `speak.end` (UTTERANCE_ENDED), so `turn.end` always
//   follows it; `heard` is what the speaker counted as played.
import { assign, enqueueActions, fromCallback, setup } from 'xstate';
import { wireError } from './errors.js';
import { heardPrefix } from './heardText.js';
import type { AgentSettings, ReplyEvent, ReplyOrder, ServerMessage, TurnEvent, TurnStatus, UtteranceEnded, WireError } from './types.js';

export interface TurnInput {
  sessionId: string;
  agent: AgentSettings;
  /** Longest reply spoken (characters); the rest is not asked for (the speaker's text limit). */
  maxReplyChars: number;
}

/** What the reply actor is started with: one per reply, for the user's words of `turn`. */
export interface ReplyInput {
  sessionId: string;
  turn: string;
  transcript: string;
  agent: AgentSettings;
}

/** A reply being written or spoken. */
interface Reply {
  turn: string;
  /** The utterance that speaks it: `reply:` + turn. */
  id: string;
  /** The user's words it answers. */
  words: string;
  /** All text written so far (bounded by maxReplyChars). */
  text: string;
  /** Characters of `text` already handed to the speaker. */
  handed: number;
  /** The model finished writing. */
  written: boolean;
}

export interface TurnContext {
  sessionId: string;
  agent: AgentSettings;
  maxReplyChars: number;
  reply: Reply | null;
  /** The user turn being heard now (started, no final yet), if any. */
  hearing: string | null;
  /** Words heard while the reply was being ended: answered next. */
  next: { turn: string; text: string } | null;
  /** How the reply being ended is to be reported (set when the turn, not the speaker, ended it). */
  endAs: { status: TurnStatus; error?: WireError } | null;
  /** The session is shutting down: no reply starts any more. */
  closing: boolean;
  /** The user turn that was being heard at shutdown: it ended then, so its final is ignored. */
  abandoned: string | null;
}

/** What `remember` is told: the conversation keeps the user's words and what was heard of each reply. */
export type TurnMemory =
  | { kind: 'user'; turn: string; text: string }
  | { kind: 'heard'; turn: string; heard: string; interrupted: boolean };

/** How a turn is to end, when the turn decides it. */
type EndAs = { status: TurnStatus; error?: WireError };

/** What leaves for one turn's end: the wire message's fields. */
export interface TurnEnd {
  turn: string;
  status: TurnStatus;
  heard: string;
  error?: WireError;
}


/** Every action the turn's composite actions enqueue, with its params. */
type TurnOwnAction =
  | { type: 'sendMessage'; params: ServerMessage }
  | { type: 'orderSpeaker'; params: ReplyOrder }
  | { type: 'remember'; params: TurnMemory }
  | { type: 'turnEnded'; params: TurnEnd }
  | { type: 'endTurn'; params: TurnEnd };

/** enqueueActions typed for this chart, with params `P`. */
const turnEnqueue = <P = undefined>(
  collect: Parameters<typeof enqueueActions<TurnContext, TurnEvent, P, TurnEvent, never, TurnOwnAction, never>>[0],
) => enqueueActions<TurnContext, TurnEvent, P, TurnEvent, never, TurnOwnAction, never>(collect);

const hasWords = (text: string) => text.trim().length > 0;
const newReply = (turn: string, words: string): Reply => ({ turn, id: `reply:${turn}`, words, text: '', handed: 0, written: false });

/** How a reply's utterance end becomes its turn's end. */
function endFromUtterance(reply: Reply, ended: UtteranceEnded, endAs: TurnContext['endAs']): TurnEnd {
  const heard = ended.reason === 'completed' ? reply.text.trim() : heardPrefix(reply.text, ended.heardChars);
  if (endAs) return { turn: reply.turn, status: endAs.status, heard, ...(endAs.error ? { error: endAs.error } : {}) };
  switch (ended.reason) {
    case 'completed':
      return { turn: reply.turn, status: 'completed', heard };
    case 'interrupted':
    case 'stopped':
    case 'superseded':
      return { turn: reply.turn, status: 'interrupted', heard };
    default:
      return { turn: reply.turn, status: 'failed', heard, error: ended.error ?? wireError('internal') };
  }
}

export const turnSetup = setup({
  types: {
    context: {} as TurnContext,
    events: {} as TurnEvent,
    input: {} as TurnInput,
  },
  actions: {
    // Provided by src/. Defaults do nothing so the pure machine can run alone.
    sendMessage: (_, _message: ServerMessage) => {},
    /** The conversation's record (src/agent/conversation.ts). */
    remember: (_, _memory: TurnMemory) => {},
    /** Observability hook: one call per turn end. */
    turnEnded: (_, _end: TurnEnd) => {},
  },
  actors: {
    /** Writes one reply: REPLY_DELTA…, then REPLY_DONE or REPLY_ERROR. Provided by src/ (a language model). */
    reply: fromCallback<{ type: 'NONE' }, ReplyInput>(() => () => {}),
  },
  guards: {
    heardWords: ({ event }) => event.type === 'USER_TURN_HEARD' && hasWords(event.text),
    heardNothing: ({ event }) => event.type === 'USER_TURN_HEARD' && !hasWords(event.text),
    nothingWritten: ({ context }) => context.reply?.text === '',
    /** Text written and not yet handed, and nobody speaking over it. */
    mayHand: ({ context }) => context.hearing === null && context.reply !== null && context.reply.text.length > context.reply.handed,
    replyFull: ({ context }) => context.reply !== null && context.reply.text.length >= context.maxReplyChars,
    hasNext: ({ context }) => context.next !== null,
    isClosing: ({ context }) => context.closing,
    /** All written and nobody speaking over it: the rest is handed as the end. */
    mayFinish: ({ context }) => context.hearing === null && context.reply?.written === true,
    isReplyEnd: ({ context, event }) => event.type === 'UTTERANCE_ENDED' && context.reply !== null && event.id === context.reply.id,
    stopsReply: ({ context, event }) =>
      event.type === 'STOP' && context.reply !== null && (event.id === undefined || event.id === context.reply.id),
  },
  delays: {
    /** The speaker ends every utterance it accepted; if an end were lost, the turn still ends. */
    endingDeadline: 15_000,
  },
});

/** The one place a `turn.end` leaves (declared first: the actions below enqueue it by name). */
const turnEnding = turnSetup.extend({
  actions: {
    /** The turn's orders to the speaker go to the connection (the parent), which routes them. */
    orderSpeaker: turnEnqueue<ReplyOrder>(({ self, enqueue }, order) => {
      if (self._parent) enqueue.sendParent(order);
    }),
    /** One turn's end; the conversation learns what was heard of the reply, and metrics count it. */
    endTurn: turnEnqueue<TurnEnd>(({ enqueue }, end) => {
      enqueue({ type: 'sendMessage', params: { type: 'turn.end', ...end } });
      if (end.status === 'completed' || end.status === 'interrupted' || (end.status === 'failed' && end.heard)) {
        enqueue({ type: 'remember', params: { kind: 'heard', turn: end.turn, heard: end.heard, interrupted: end.status !== 'completed' } });
      }
      enqueue({ type: 'turnEnded', params: end });
    }),
  },
});

const turnActions = turnEnding.extend({
  actions: {
    noteHearing: assign(({ event }) => (event.type === 'USER_TURN_STARTED' ? { hearing: event.turn } : {})),
    /** A final came: that turn is no longer being heard. */
    clearHearing: assign(({ context, event }) => (event.type === 'USER_TURN_HEARD' && event.turn === context.hearing ? { hearing: null } : {})),
    /** The user's words (this final) start a reply. */
    startReply: turnEnqueue(({ event, enqueue }) => {
      if (event.type !== 'USER_TURN_HEARD') return;
      enqueue({ type: 'remember', params: { kind: 'user', turn: event.turn, text: event.text } });
      enqueue.assign({ reply: newReply(event.turn, event.text), next: null, endAs: null });
    }),
    /** The words kept while the last reply was being ended start the next (they are remembered already). */
    startNextReply: assign(({ context }) => (context.next ? { reply: newReply(context.next.turn, context.next.text), next: null, endAs: null } : {})),
    /**
     * Shutdown: nothing new starts, and the user turn being heard ends now (its final may only
     * come after the connection closed). Two actions, no enqueued assign: at shutdown the
     * connection sends this from inside its own action, where XState warns about dynamic assigns.
     */
    endHeardAtClose: turnEnqueue(({ context, enqueue }) => {
      if (context.hearing) {
        enqueue({ type: 'endTurn', params: { turn: context.hearing, status: 'failed', heard: '', error: wireError('shutting_down') } });
      }
    }),
    markClosing: assign(({ context }) => ({ closing: true, hearing: null, abandoned: context.hearing })),
    /** After shutdown: a final still ends its turn (nothing answers it any more). */
    endUnanswerable: turnEnqueue(({ context, event, enqueue }) => {
      if (event.type !== 'USER_TURN_HEARD' || event.turn === context.abandoned) return;
      const end: TurnEnd = hasWords(event.text)
        ? { turn: event.turn, status: 'failed', heard: '', error: wireError('shutting_down') }
        : event.error
          ? { turn: event.turn, status: 'failed', heard: '', error: event.error }
          : { turn: event.turn, status: 'empty', heard: '' };
      enqueue({ type: 'endTurn', params: end });
    }),
    /** A final that starts no reply ends its turn now: `failed` when hearing failed, else `empty`. */
    endUnanswered: turnEnqueue(({ event, enqueue }) => {
      if (event.type !== 'USER_TURN_HEARD' || hasWords(event.text)) return;
      const end: TurnEnd = event.error
        ? { turn: event.turn, status: 'failed', heard: '', error: event.error }
        : { turn: event.turn, status: 'empty', heard: '' };
      enqueue({ type: 'endTurn', params: end });
    }),
    /** The written text grows (cut at the reply limit); the client sees it as it is written. */
    appendText: turnEnqueue(({ context, event, enqueue }) => {
      const reply = context.reply;
      if (event.type !== 'REPLY_DELTA' || !reply) return;
      const text = event.text.slice(0, Math.max(0, context.maxReplyChars - reply.text.length));
      if (!text) return;
      enqueue.assign({ reply: { ...reply, text: reply.text + text } });
      enqueue({ type: 'sendMessage', params: { type: 'reply.text', turn: reply.turn, text } });
    }),
    noteWritten: assign(({ context }) => (context.reply ? { reply: { ...context.reply, written: true } } : {})),
    /** What was written and not yet handed goes to the speaker (the first hand-over opens the utterance). */
    hand: turnEnqueue<{ final: boolean }>(({ context, enqueue }, { final }) => {
      const reply = context.reply;
      if (!reply) return;
      const text = reply.text.slice(reply.handed);
      if (!text && !final && reply.handed > 0) return;
      enqueue({
        type: 'orderSpeaker',
        params: {
          type: 'REPLY_SPEAK',
          request: { id: reply.id, text, final, mode: 'enqueue', ...(context.agent.voice ? { voice: context.agent.voice } : {}) },
        },
      });
      enqueue.assign({ reply: { ...reply, handed: reply.text.length } });
    }),
    /** The turn ends the reply's utterance itself, and says how its turn is to be reported. */
    cutReply: turnEnqueue<EndAs>(({ context, enqueue }, endAs) => {
      if (!context.reply) return;
      // The user's words: the speaker ends it as a barge-in would. Anything else: a stop.
      enqueue({
        type: 'orderSpeaker',
        params: endAs.status === 'interrupted' ? { type: 'REPLY_INTERRUPT' } : { type: 'REPLY_STOP', id: context.reply.id },
      });
      enqueue.assign({ endAs });
    }),
    /** Words heard while the reply is being ended: answered next (a newer one supersedes an older). */
    keepNext: turnEnqueue(({ context, event, enqueue }) => {
      if (event.type !== 'USER_TURN_HEARD') return;
      if (context.next) enqueue({ type: 'endTurn', params: { turn: context.next.turn, status: 'superseded', heard: '' } });
      enqueue({ type: 'remember', params: { kind: 'user', turn: event.turn, text: event.text } });
      enqueue.assign({ next: { turn: event.turn, text: event.text } });
    }),
    /** A reply that never reached the speaker ends now. */
    endUnspoken: turnEnqueue<EndAs>(({ context, enqueue }, endAs) => {
      if (context.reply) enqueue({ type: 'endTurn', params: { turn: context.reply.turn, heard: '', ...endAs } });
    }),
    forgetReply: assign({ reply: null }),
    /** The reply's utterance ended: its turn ends as that end says (or as the turn decided). */
    endSpoken: turnEnqueue(({ context, event, enqueue }) => {
      if (event.type !== 'UTTERANCE_ENDED' || !context.reply) return;
      enqueue({ type: 'endTurn', params: endFromUtterance(context.reply, event, context.endAs) });
      enqueue.assign({ reply: null, endAs: null });
    }),
    /** The speaker never answered (should not happen): the turn ends failed rather than hang. */
    endLost: turnEnqueue(({ context, enqueue }) => {
      if (!context.reply) return;
      enqueue({ type: 'endTurn', params: { turn: context.reply.turn, status: 'failed', heard: '', error: wireError('internal') } });
      enqueue.assign({ reply: null, endAs: null });
    }),
    /** The session is shutting down: a held next turn ends with it. */
    endNext: turnEnqueue(({ context, enqueue }) => {
      if (!context.next) return;
      enqueue({ type: 'endTurn', params: { turn: context.next.turn, status: 'failed', heard: '', error: wireError('shutting_down') } });
      enqueue.assign({ next: null });
    }),
  },
});

/**
 * While the speaker has the reply (`speaking`, `finishing`): its end ends the turn; the user's
 * words cut it and are answered next; after shutdown nothing is answered (the reply ends with
 * the speaker's end).
 */
const whileSpoken = {
  UTTERANCE_ENDED: { guard: 'isReplyEnd' as const, target: '#turn.replying.over' as const, actions: 'endSpoken' as const },
  USER_TURN_HEARD: [
    { guard: 'isClosing' as const, actions: ['clearHearing' as const, 'endUnanswerable' as const] },
    {
      guard: 'heardWords' as const,
      target: '#turn.replying.ending' as const,
      actions: ['clearHearing' as const, { type: 'cutReply' as const, params: { status: 'interrupted' as const } }, 'keepNext' as const],
    },
  ],
};

/** After a reply's turn ended: closed on shutdown, else the words heard meanwhile, else waiting. */
const afterReply = [
  { guard: 'isClosing' as const, target: '#turn.closed' as const, actions: 'endNext' as const },
  { guard: 'hasNext' as const, target: '#turn.replying' as const, reenter: true, actions: 'startNextReply' as const },
  { target: '#turn.waiting' as const },
];

export const turnMachine = turnActions.createMachine({
  id: 'turn',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    agent: input.agent,
    maxReplyChars: input.maxReplyChars,
    reply: null,
    hearing: null,
    next: null,
    endAs: null,
    closing: false,
    abandoned: null,
  }),
  initial: 'waiting',
  on: {
    USER_TURN_STARTED: { actions: 'noteHearing' },
    // A reply in the speaker's hands ends with the speaker's shutdown (failed, shutting_down).
    SHUTDOWN: { actions: ['endHeardAtClose', 'markClosing'] },
  },
  states: {
    // No reply: user turns are heard, and words start one.
    waiting: {
      on: {
        USER_TURN_HEARD: [
          { guard: 'heardWords', target: 'replying', actions: ['clearHearing', 'startReply'] },
          { actions: ['clearHearing', 'endUnanswered'] },
        ],
        SHUTDOWN: { target: 'closed', actions: ['endHeardAtClose', 'markClosing'] },
      },
    },

    replying: {
      initial: 'writing',
      on: {
        // Nothing the user said counts for this reply: its own turn ends (the reply goes on).
        USER_TURN_HEARD: { guard: 'heardNothing', actions: ['clearHearing', 'endUnanswered'] },
      },
      states: {
        // The model writes; its request lives exactly as long as this state.
        writing: {
          invoke: {
            id: 'reply',
            src: 'reply',
            input: ({ context }): ReplyInput => ({
              sessionId: context.sessionId,
              turn: context.reply!.turn,
              transcript: context.reply!.words,
              agent: context.agent,
            }),
          },
          initial: 'thinking',
          states: {
            // Nothing handed to the speaker yet: the reply has not begun.
            thinking: {
              always: [
                { guard: 'mayFinish', target: '#turn.replying.finishing', actions: { type: 'hand', params: { final: true } } },
                { guard: 'mayHand', target: 'speaking', actions: { type: 'hand', params: { final: false } } },
              ],
              on: {
                REPLY_DELTA: [
                  { guard: 'replyFull', actions: 'noteWritten' },
                  { actions: 'appendText' },
                ],
                REPLY_DONE: [
                  // Nothing written: an empty reply, spoken to its (empty) end.
                  { guard: 'nothingWritten', target: '#turn.replying.over', actions: [{ type: 'endUnspoken', params: { status: 'completed' } }, 'forgetReply'] },
                  { actions: 'noteWritten' },
                ],
                REPLY_ERROR: {
                  target: '#turn.replying.over',
                  actions: [
                    { type: 'endUnspoken', params: ({ event }) => ({ status: 'failed' as const, error: (event as Extract<ReplyEvent, { type: 'REPLY_ERROR' }>).error }) },
                    'forgetReply',
                  ],
                },
                // The user's words before the reply began: it is superseded, and they are answered.
                USER_TURN_HEARD: {
                  guard: 'heardWords',
                  target: '#turn.replying',
                  reenter: true,
                  actions: ['clearHearing', { type: 'endUnspoken', params: { status: 'superseded' } }, 'forgetReply', 'startReply'],
                },
                STOP: {
                  guard: 'stopsReply',
                  target: '#turn.replying.over',
                  actions: [{ type: 'endUnspoken', params: { status: 'interrupted' } }, 'forgetReply'],
                },
                SHUTDOWN: {
                  target: '#turn.closed',
                  actions: ['endHeardAtClose', 'markClosing', { type: 'endUnspoken', params: { status: 'failed', error: wireError('shutting_down') } }, 'forgetReply'],
                },
              },
            },
            // Handed: the speaker has the utterance and gets the rest as it is written.
            speaking: {
              on: {
                REPLY_DELTA: [
                  { guard: 'replyFull', target: '#turn.replying.finishing', actions: { type: 'hand', params: { final: true } } },
                  { actions: ['appendText', { type: 'hand', params: { final: false } }] },
                ],
                REPLY_DONE: { target: '#turn.replying.finishing', actions: { type: 'hand', params: { final: true } } },
                REPLY_ERROR: {
                  target: '#turn.replying.ending',
                  actions: { type: 'cutReply', params: ({ event }) => ({ status: 'failed' as const, error: (event as Extract<ReplyEvent, { type: 'REPLY_ERROR' }>).error }) },
                },
                ...whileSpoken,
                // A client STOP reaches the speaker too: the reply's end follows as UTTERANCE_ENDED.
                // A shutdown ends the speaker's utterances too (failed, shutting_down), the same way.
              },
            },
          },
        },
        // All text handed; the speaker plays the rest.
        finishing: {
          on: {
            ...whileSpoken,
          },
        },
        // The turn asked the speaker to end the reply; its end is awaited (bounded).
        ending: {
          after: { endingDeadline: { target: 'over', actions: 'endLost' } },
          on: {
            UTTERANCE_ENDED: { guard: 'isReplyEnd', target: 'over', actions: 'endSpoken' },
            USER_TURN_HEARD: [
              { guard: 'isClosing', actions: ['clearHearing', 'endUnanswerable'] },
              { guard: 'heardWords', actions: ['clearHearing', 'keepNext'] },
            ],
          },
        },
        // The reply's turn has ended: the next words, or waiting.
        over: {
          always: afterReply,
        },
      },
    },

    // The session is shutting down: nothing is answered, every final still ends its turn.
    closed: {
      on: { USER_TURN_HEARD: { actions: ['clearHearing', 'endUnanswerable'] } },
    },
  },
});

export type TurnMachine = typeof turnMachine;
