// The turn chart alone: its reply actor scripted by the test, its orders and messages recorded,
// on XState's simulated clock.
import { createActor, fromCallback, SimulatedClock } from 'xstate';
import { turnMachine, type ReplyInput, type TurnEnd, type TurnMemory } from '../../machines/turn.machine.js';
import type { ReplyEvent, ReplyOrder, ServerMessage, TurnEvent, UtteranceEnded } from '../../machines/types.js';

export interface ScriptedReply {
  input: ReplyInput;
  /** What the reply actor reports (ignored once it was stopped, like a real one). */
  send(event: ReplyEvent): void;
  stopped: boolean;
}

export function createTurnHarness(options: { maxReplyChars?: number; voice?: string; instructions?: string } = {}) {
  const clock = new SimulatedClock();
  const messages: ServerMessage[] = [];
  const orders: ReplyOrder[] = [];
  const memory: TurnMemory[] = [];
  const ends: TurnEnd[] = [];
  const replies: ScriptedReply[] = [];
  const machine = turnMachine.provide({
    actions: {
      sendMessage: (_, message) => void messages.push(message),
      orderSpeaker: (_, order) => void orders.push(order),
      remember: (_, m) => void memory.push(m),
      turnEnded: (_, end) => void ends.push(end),
    },
    actors: {
      reply: fromCallback<{ type: 'NONE' }, ReplyInput>(({ input, sendBack }) => {
        const reply: ScriptedReply = {
          input,
          stopped: false,
          send: (event) => {
            if (!reply.stopped) sendBack(event);
          },
        };
        replies.push(reply);
        return () => {
          reply.stopped = true;
        };
      }),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: {
      sessionId: 's1',
      agent: { ...(options.voice ? { voice: options.voice } : {}), ...(options.instructions ? { instructions: options.instructions } : {}) },
      maxReplyChars: options.maxReplyChars ?? 10_000,
    },
  });
  actor.start();
  const send = (event: TurnEvent) => actor.send(event);
  return {
    actor,
    clock,
    messages,
    orders,
    memory,
    ends,
    replies,
    send,
    /** The newest reply actor. */
    get reply(): ScriptedReply {
      return replies[replies.length - 1]!;
    },
    started: (turn: string) => send({ type: 'USER_TURN_STARTED', turn }),
    heard: (turn: string, text: string) => send({ type: 'USER_TURN_HEARD', turn, text }),
    /** The user says `text` in `turn`: its start, then its final. */
    says(turn: string, text: string) {
      send({ type: 'USER_TURN_STARTED', turn });
      send({ type: 'USER_TURN_HEARD', turn, text });
    },
    utteranceEnded: (turn: string, reason: UtteranceEnded['reason'], heardChars = 0, error?: UtteranceEnded['error']) =>
      send({ type: 'UTTERANCE_ENDED', id: `reply:${turn}`, stream: 0, reason, heardChars, ...(error ? { error } : {}) }),
    turnEnds: () => messages.filter((m): m is Extract<ServerMessage, { type: 'turn.end' }> => m.type === 'turn.end'),
    /** The text handed to the speaker for `id`, joined, and whether it was closed (final). */
    handed(id: string) {
      const speaks = orders.filter((o): o is Extract<ReplyOrder, { type: 'REPLY_SPEAK' }> => o.type === 'REPLY_SPEAK' && o.request.id === id);
      return { text: speaks.map((o) => o.request.text).join(''), final: speaks.some((o) => o.request.final), frames: speaks.length };
    },
    state: () => JSON.stringify(actor.getSnapshot().value),
  };
}
