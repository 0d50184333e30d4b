// The connection statechart: one actor per client connection (WebSocket or speech request).
// It owns the handshake, the connection's end and its close; once the handshake settled the
// format it is `open`: `quiet` until the first speak frame, then `speaking`, which invokes the
// speaker (speaker.machine.ts) and routes the client's speak, stop and backpressure events to
// it. Beside that speech region, `open` has a hearing region: a session that was granted
// listening invokes the listener host (src/listening/listenerHost.ts, which runs the listener
// chart, listener.machine.ts, on the input's media clock) and routes microphone audio, commits
// and the speaker's audibility to it; the listener's barge-in comes back and interrupts the speaker.
// A third region, `link`, lets a resumable session outlive a dropped connection: `detached` for
// at most the resume window, then it ends as if the client were gone.
//
// Ending: CLIENT_GONE and SHUTDOWN go to the speaker, which ends everything it holds (one
// speak.end each) and is done; its output says why, and the connection closes accordingly.
// All of it happens inside the one `send` that delivered the event (XState's mailboxes are
// synchronous), so `closing` is never seen from outside and needs no deadline.
import { assign, enqueueActions, fromCallback, raise, sendTo, setup, type AnyActorRef, type DoneActorEvent } from 'xstate';
import type {
  AgentSettings,
  AssistantAudible,
  AudibleTail,
  ConnectionEvent,
  ErrorCode,
  ListenGrant,
  ListenVerdict,
  ResumeOffer,
  ServerMessage,
  SessionLimits,
  SpeakerEndCause,
  SpeakerEvent,
  TurnEvent,
  VoiceInfo,
} from './types.js';
import { closeRequest, handshakeRefusedReason, wireError, type CloseRequest } from './errors.js';
import { speakerMachine, type SpeakerInput, type SpeakerOutput } from './speaker.machine.js';
import { turnMachine, type TurnInput } from './turn.machine.js';

export interface ConnectionInput {
  sessionId: string;
  voices: VoiceInfo[];
  /** The names a client may use for `voices` (id, or `provider:id`); derived once per engine. */
  voiceIds: ReadonlySet<string>;
  defaultVoice: string;
  /** Sample rates the server can produce; the first is the default. */
  sampleRates: number[];
  /** Every limit (the defaults filled in); one object per engine, shared by its sessions. */
  limits: SessionLimits;
  /** Milliseconds clock for stats; injectable so tests can use simulated time. */
  now?: () => number;
}

export interface ConnectionContext {
  sessionId: string;
  limits: SessionLimits;
  voices: VoiceInfo[];
  voiceIds: ReadonlySet<string>;
  defaultVoice: string;
  sampleRates: number[];
  sampleRate: number;
  now: () => number;
  /** The engine's listen verdict from START; null when the client did not ask to listen. */
  listen: ListenVerdict | null;
  /** The completed utterance the client still plays (hearing.listening.tail), else null. */
  audibleTail: AudibleTail | null;
  /** The session's agent (wire `session.start.agent`); null when the client did not ask for one. */
  agent: AgentSettings | null;
  /** The resume offer from START; null when the client did not ask to be able to resume. */
  resume: ResumeOffer | null;
}

/** What the connection's listening actor (the listener host) takes: everything it routes there. */
export type ListenerHostEvent = { type: 'MIC_AUDIO'; payload: Uint8Array } | { type: 'COMMIT' } | AssistantAudible | { type: 'SHUTDOWN' };

/** What the listener host is started with. */
export interface ListenerHostInput {
  sessionId: string;
  grant: ListenGrant;
}

const performanceNow = () => performance.now();

/** A refused handshake: the refusal's code in the error, one close reason for all of them. */
const refusedHandshake = (code: ErrorCode): CloseRequest => closeRequest(code, handshakeRefusedReason);

export const connectionSetup = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as ConnectionInput,
  },
  actions: {
    // Provided by the transport. Defaults do nothing so the pure machine can run alone.
    sendMessage: (_, _message: ServerMessage) => {},
    closeConnection: (_, _close: CloseRequest) => {},
    /** The format session.start asked for, where the server offers it; the defaults otherwise. */
    negotiateFormat: assign(({ context, event }) => {
      if (event.type !== 'START') return {};
      return {
        sampleRate: context.sampleRates.includes(event.sampleRate) ? event.sampleRate : context.sampleRate,
        defaultVoice: event.voice !== undefined && context.voiceIds.has(event.voice) ? event.voice : context.defaultVoice,
        ...(event.listen ? { listen: event.listen } : {}),
        ...(event.agent ? { agent: event.agent } : {}),
        ...(event.resume ? { resume: event.resume } : {}),
      };
    }),
    /**
     * Anything the connection forwards to the speaker: the client's frames unchanged (its events
     * are the speaker's own), and the turn's reply orders as the speak or stop they stand for.
     */
    routeToSpeaker: sendTo('speaker', ({ event }): SpeakerEvent => {
      if (event.type === 'REPLY_SPEAK') return { type: 'SPEAK', request: event.request };
      if (event.type === 'REPLY_STOP') return { type: 'STOP', id: event.id };
      return event as SpeakerEvent;
    }),
    /** User turns, utterance ends, and the client's stop go to the turn. */
    routeToTurn: sendTo('turn', ({ event }) => event as TurnEvent),
    /** Shutdown: the turn ends what it holds (sent at once, for the same reason as finishListening). */
    finishTurn: ({ self }) => {
      const turn = (self.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children.turn;
      turn?.send({ type: 'SHUTDOWN' } satisfies TurnEvent);
    },
    /** Barge-in: the speaker ends what plays and what waits (reason interrupted). */
    interruptSpeaker: sendTo('speaker', { type: 'INTERRUPT' } satisfies SpeakerEvent),
    /** Microphone audio and commits go to the listener host unchanged. */
    routeToListener: sendTo('listener', ({ event }) => event as ListenerHostEvent),
    /** Whether the assistant is audible, as the listener's echo guard and barge-in should see it. */
    tellListenerAudible: sendTo('listener', (_, { audible }: { audible: boolean }) => ({ type: 'ASSISTANT_AUDIBLE', audible }) satisfies ListenerHostEvent),
    noteAudibleTail: assign(({ event }) => ({ audibleTail: event.type === 'ASSISTANT_AUDIBLE' ? (event.tail ?? null) : null })),
    forgetAudibleTail: assign({ audibleTail: null }),
    /**
     * The session ends for shutdown: a turn in progress gets its final transcript first. Sent to
     * the listener at once (a sendTo would run after this step's close, or find it stopped).
     */
    finishListening: ({ self }) => {
      const listener = (self.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children.listener;
      listener?.send({ type: 'SHUTDOWN' } satisfies ListenerHostEvent);
    },
  },
  actors: {
    speaker: speakerMachine,
    /** The listener host of a session granted listening (provided by src/; does nothing by default). */
    listener: fromCallback<ListenerHostEvent, ListenerHostInput>(() => () => {}),
    /** The agent turn of a session that asked for it (its reply actor provided by src/). */
    turn: turnMachine,
  },
  guards: {
    listenGranted: ({ context }) => context.listen?.granted === true,
    audibleNow: ({ event }) => event.type === 'ASSISTANT_AUDIBLE' && event.audible,
    /** A completed utterance ended and the client still plays some of it. */
    stillPlays: ({ event }) => event.type === 'ASSISTANT_AUDIBLE' && !event.audible && (event.tail?.playsForMs ?? 0) > 0,
    /** The client reports the tail's stream played to its end. */
    tailPlayed: ({ context, event }) =>
      event.type === 'PLAYBACK' && context.audibleTail !== null && event.stream === context.audibleTail.stream && event.playedMs >= context.audibleTail.sentMs,
    /** The agent needs ears: it answers only a session that listens. */
    agentGranted: ({ context }) => context.agent !== null && context.listen?.granted === true,
    resumable: ({ context }) => context.resume !== null,
    /** The speaker is done for `cause` (its output). */
    speakerEndedFor: ({ event }, { cause }: { cause: SpeakerEndCause }) =>
      (event as unknown as DoneActorEvent<SpeakerOutput>).output?.cause === cause,
  },
  delays: {
    handshake: ({ context }) => context.limits.handshakeTimeoutMs,
    /** What the client plausibly still plays, bounded: the assistant never stays audible for good. */
    audibleTail: ({ context }) => Math.min(context.audibleTail?.playsForMs ?? 0, context.limits.audibleTailMaxMs),
    resumeWindow: ({ context }) => context.resume?.windowMs ?? 0,
  },
});

const connectionActions = connectionSetup.extend({
  actions: {
    /** A client that asked to listen and cannot: the session goes on, speaking only. */
    refuseListening: connectionSetup.enqueueActions(({ context, enqueue }) => {
      if (context.listen?.granted === false) enqueue({ type: 'sendMessage', params: { type: 'error', ...wireError('listen_unavailable') } });
    }),
  },
});

/** Listening frames in a session that does not listen. */
const notListening = {
  actions: {
    type: 'sendMessage' as const,
    params: { type: 'error', code: 'bad_request', message: 'this session does not listen (ask with session.start.listen)' } satisfies ServerMessage,
  },
};

/** Refuse a first frame that is not session.start: the error, then the close. */
const refuseHandshake = {
  target: 'ended' as const,
  actions: [
    { type: 'sendMessage' as const, params: { type: 'error', ...wireError('bad_request') } satisfies ServerMessage },
    { type: 'closeConnection' as const, params: refusedHandshake('bad_request') },
  ],
};

export const connectionMachine = connectionActions.createMachine({
  id: 'connection',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    limits: input.limits,
    voices: input.voices,
    voiceIds: input.voiceIds,
    defaultVoice: input.defaultVoice,
    sampleRates: input.sampleRates,
    sampleRate: input.sampleRates[0] ?? 24_000,
    now: input.now ?? performanceNow,
    listen: null,
    audibleTail: null,
    agent: null,
    resume: null,
  }),
  initial: 'handshake',
  states: {
    handshake: {
      after: {
        handshake: {
          target: 'ended',
          actions: [
            { type: 'sendMessage', params: { type: 'error', ...wireError('handshake_timeout') } },
            { type: 'closeConnection', params: closeRequest('handshake_timeout') },
          ],
        },
      },
      on: {
        START: {
          target: 'open',
          actions: [
            'negotiateFormat',
            {
              type: 'sendMessage',
              // Protocol 2 only for a client that asked for a version 2 feature: others see version 1.
              params: ({ context }) => ({
                type: 'session.ready',
                sessionId: context.sessionId,
                protocol: context.listen || context.agent || context.resume ? 2 : 1,
                format: { encoding: 'pcm_s16le', sampleRate: context.sampleRate, channels: 1 },
                voices: context.voices,
                ...(context.listen?.granted ? { listen: { format: context.listen.format } } : {}),
                ...(context.resume ? { resume: context.resume } : {}),
              }),
            },
            'refuseListening',
          ],
        },
        BAD_START: {
          target: 'ended',
          actions: [
            {
              type: 'sendMessage',
              params: ({ event }) => {
                const { code, message } = event as Extract<ConnectionEvent, { type: 'BAD_START' }>;
                return { type: 'error', code, message };
              },
            },
            {
              type: 'closeConnection',
              params: ({ event }) => refusedHandshake((event as Extract<ConnectionEvent, { type: 'BAD_START' }>).code),
            },
          ],
        },
        SPEAK: refuseHandshake,
        STOP: refuseHandshake,
        CLIENT_GONE: 'ended',
        SHUTDOWN: {
          target: 'ended',
          actions: { type: 'closeConnection', params: closeRequest('shutting_down') },
        },
      },
    },

    open: {
      type: 'parallel',
      states: {
        speech: {
          initial: 'quiet',
          states: {
            // No speaker yet: an idle connection costs one actor, not two. STOP has nothing to stop.
            quiet: {
              on: {
                SPEAK: 'speaking',
                REPLY_SPEAK: 'speaking',
                // Nothing plays: nothing to stop.
                REPLY_STOP: {},
                REPLY_INTERRUPT: {},
                STOP: {},
                // Nothing plays: a barge-in or a playback report has nothing to act on.
                BARGE_IN: {},
                PLAYBACK: {},
                CLIENT_GONE: '#connection.ended',
                SHUTDOWN: {
                  target: '#connection.ended',
                  actions: ['finishListening', 'finishTurn', { type: 'closeConnection', params: closeRequest('shutting_down') }],
                },
              },
            },
            speaking: {
              // The speaker lives from the first speak frame to the connection's end; room here for its
              // siblings. Entered only from `quiet`, by that first frame: the entry hands it over (an
              // entry action may address the child its state invokes; a transition action may not).
              entry: 'routeToSpeaker',
              invoke: {
                id: 'speaker',
                src: 'speaker',
                input: ({ context }): SpeakerInput => ({
                  sessionId: context.sessionId,
                  limits: context.limits,
                  voiceIds: context.voiceIds,
                  defaultVoice: context.defaultVoice,
                  sampleRate: context.sampleRate,
                  now: context.now,
                  reports: { audible: context.listen?.granted === true, ends: context.agent !== null && context.listen?.granted === true },
                }),
                onDone: [
                  {
                    guard: { type: 'speakerEndedFor', params: { cause: 'shutdown' } },
                    target: '#connection.ended',
                    actions: { type: 'closeConnection', params: closeRequest('shutting_down') },
                  },
                  {
                    guard: { type: 'speakerEndedFor', params: { cause: 'client_stalled' } },
                    target: '#connection.ended',
                    actions: { type: 'closeConnection', params: closeRequest('client_stalled') },
                  },
                  // The client went away: nothing to close.
                  { target: '#connection.ended' },
                ],
                // Should never happen (every action is total); if it does, only this connection ends.
                onError: {
                  target: '#connection.ended',
                  actions: { type: 'closeConnection', params: closeRequest('internal') },
                },
              },
              initial: 'serving',
              states: {
                serving: {
                  on: {
                    SPEAK: { actions: 'routeToSpeaker' },
                    STOP: { actions: 'routeToSpeaker' },
                    REPLY_SPEAK: { actions: 'routeToSpeaker' },
                    REPLY_STOP: { actions: 'routeToSpeaker' },
                    REPLY_INTERRUPT: { actions: 'interruptSpeaker' },
                    CLIENT_BACKPRESSURE: { actions: 'routeToSpeaker' },
                    CLIENT_DRAINED: { actions: 'routeToSpeaker' },
                    PLAYBACK: { actions: 'routeToSpeaker' },
                    BARGE_IN: { actions: 'interruptSpeaker' },
                    CLIENT_GONE: { target: 'closing', actions: 'routeToSpeaker' },
                    SHUTDOWN: { target: 'closing', actions: ['finishListening', 'finishTurn', 'routeToSpeaker'] },
                  },
                },
                // The speaker is ending what it holds; its done event (above) closes the connection.
                closing: {},
              },
            },
          },
        },

        // The link region: whether a client is connected. Only a resumable session (one given a
        // resume offer) is ever detached: its speaker and listener go on, their frames kept in the
        // session's outbound log (src/), until a client resumes it or the window runs out, which
        // ends the session exactly as a client gone would.
        link: {
          initial: 'attached',
          states: {
            attached: {
              on: { DETACH: { guard: 'resumable', target: 'detached' } },
            },
            detached: {
              after: { resumeWindow: { actions: raise({ type: 'CLIENT_GONE' } satisfies ConnectionEvent) } },
              on: { ATTACH: 'attached' },
            },
          },
        },

        // The hearing region: a session granted listening runs its listener host from here to the end.
        hearing: {
          initial: 'choosing',
          states: {
            choosing: {
              always: [{ guard: 'listenGranted', target: 'listening' }, { target: 'off' }],
            },
            off: {
              on: { MIC_AUDIO: notListening, COMMIT: notListening },
            },
            listening: {
              invoke: {
                id: 'listener',
                src: 'listener',
                input: ({ context }): ListenerHostInput => ({ sessionId: context.sessionId, grant: context.listen as ListenGrant }),
                // Should never happen (the host catches what it calls); if it does, the session speaks only.
                onError: {
                  target: 'off',
                  actions: { type: 'sendMessage', params: { type: 'error', code: 'internal', message: 'listening failed; the session goes on speaking only' } },
                },
              },
              on: {
                MIC_AUDIO: { actions: 'routeToListener' },
                COMMIT: { actions: 'routeToListener' },
              },
              // The assistant's audibility as the listener hears it: the speaker's view (first audio
              // to end), plus the tail of a completed utterance that the client still plays from its
              // buffer, bounded by wall time and cut short by a playback report of its end.
              initial: 'silent',
              states: {
                silent: {
                  on: { ASSISTANT_AUDIBLE: { guard: 'audibleNow', target: 'audible' } },
                },
                audible: {
                  entry: { type: 'tellListenerAudible', params: { audible: true } },
                  on: {
                    ASSISTANT_AUDIBLE: [
                      { guard: 'stillPlays', target: 'tail', actions: 'noteAudibleTail' },
                      { guard: 'audibleNow' },
                      { target: 'silent', actions: { type: 'tellListenerAudible', params: { audible: false } } },
                    ],
                  },
                },
                tail: {
                  exit: 'forgetAudibleTail',
                  after: { audibleTail: { target: 'silent', actions: { type: 'tellListenerAudible', params: { audible: false } } } },
                  on: {
                    ASSISTANT_AUDIBLE: { guard: 'audibleNow', target: 'audible' },
                    PLAYBACK: { guard: 'tailPlayed', target: 'silent', actions: { type: 'tellListenerAudible', params: { audible: false } } },
                  },
                },
              },
            },
          },
        },

        // The answering region: a session that asked for the agent (and listens) runs its turn here.
        answering: {
          initial: 'choosing',
          states: {
            choosing: {
              always: [{ guard: 'agentGranted', target: 'answering' }, { target: 'off' }],
            },
            off: {},
            answering: {
              invoke: {
                id: 'turn',
                src: 'turn',
                input: ({ context }): TurnInput => ({
                  sessionId: context.sessionId,
                  agent: context.agent!,
                  maxReplyChars: context.limits.maxTextChars,
                }),
                // Should never happen (every action is total); if it does, the session listens and speaks on.
                onError: {
                  target: 'off',
                  actions: { type: 'sendMessage', params: { type: 'error', code: 'internal', message: 'the agent failed; the session goes on without it' } },
                },
              },
              on: {
                USER_TURN_STARTED: { actions: 'routeToTurn' },
                USER_TURN_HEARD: { actions: 'routeToTurn' },
                UTTERANCE_ENDED: { actions: 'routeToTurn' },
                STOP: { actions: 'routeToTurn' },
              },
            },
          },
        },
      },
    },

    ended: {
      type: 'final',
    },
  },
});

export type ConnectionMachine = typeof connectionMachine;
