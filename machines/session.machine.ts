// The session statechart: one actor per client connection.
//
// Ownership: the upstream synthesis of the current utterance is invoked by `active`,
// the state that encloses its whole lifetime (connecting, streaming and the
// release wait in stopping). Every timer is an `after` of the state whose wait it
// bounds, so leaving the state cancels it. The machine does no I/O: messages,
// audio and closes leave through the actions and actors that src/ provides.
//
// Completion: every speak.end leaves through `announceEnds`, the one place that
// turns end records into end signals; an utterance is marked ended once and its
// record queued for that action in the same transition.
import { assign, fromCallback, sendTo, setup } from 'xstate';
import type {
  ClientEvent,
  EndReason,
  EndRecord,
  ErrorCode,
  ServerMessage,
  SessionEvent,
  SessionLimits,
  SpeakRequest,
  UpstreamCommand,
  UpstreamInput,
  VoiceInfo,
  WireError,
} from './types.js';
import { defaultSessionLimits } from './types.js';
import {
  classifySpeak,
  endOfCurrent,
  endOfQueued,
  startCurrent,
  type CurrentUtterance,
  type QueuedUtterance,
  IdMemory,
} from './utterances.js';

export interface SessionInput {
  sessionId: string;
  voices: VoiceInfo[];
  defaultVoice: string;
  /** Sample rates the server can produce; the first is the default. */
  sampleRates: number[];
  limits?: Partial<SessionLimits>;
  /** Milliseconds clock for stats; injectable so tests can use simulated time. */
  now?: () => number;
}

export interface SessionContext {
  sessionId: string;
  limits: SessionLimits;
  voices: VoiceInfo[];
  voiceIds: ReadonlySet<string>;
  defaultVoice: string;
  sampleRates: number[];
  sampleRate: number;
  now: () => number;
  nextStream: number;
  current: CurrentUtterance | null;
  queue: QueuedUtterance[];
  usedIds: IdMemory;
  /** End records produced by this step, waiting for `announceEnds`. */
  ending: EndRecord[];
  /** True while the upstream says it has synthesized all text it was given. */
  upstreamWaiting: boolean;
}

export interface AudioOut {
  stream: number;
  seq: number;
  pcm: Int16Array;
}

export interface CloseRequest {
  code: number;
  reason: string;
}

type SpeakEvent = Extract<ClientEvent, { type: 'SPEAK' }>;
type StopEvent = Extract<ClientEvent, { type: 'STOP' }>;

const isSpeak = (e: SessionEvent): e is SpeakEvent => e.type === 'SPEAK';
const isStop = (e: SessionEvent): e is StopEvent => e.type === 'STOP';

function decide(context: SessionContext, request: SpeakRequest) {
  return classifySpeak(context, request, context.limits, context.voiceIds);
}

/** Mark the current utterance ended (once) and queue its end record. */
function endCurrent(
  context: SessionContext,
  reason: EndReason,
  cause: string,
  error?: WireError,
): Partial<SessionContext> {
  const current = context.current;
  if (!current || current.ended) return {};
  const record = endOfCurrent(current, reason, cause, context.sampleRate, error);
  context.usedIds.remember(current.id, !current.final);
  return {
    current: { ...current, ended: true },
    ending: [...context.ending, record],
  };
}

/** End every queued utterance (or the one with `onlyId`) and queue their end records. */
function endQueue(
  context: SessionContext,
  reason: EndReason,
  cause: string,
  error?: WireError,
  onlyId?: string,
): Partial<SessionContext> {
  const ended = context.queue.filter((u) => onlyId === undefined || u.id === onlyId);
  if (ended.length === 0) return {};
  for (const u of ended) context.usedIds.remember(u.id, !u.final);
  return {
    queue: context.queue.filter((u) => !ended.includes(u)),
    ending: [...context.ending, ...ended.map((u) => endOfQueued(u, reason, cause, error))],
  };
}

function endEverything(context: SessionContext, reason: EndReason, cause: string, error?: WireError) {
  const afterCurrent = { ...context, ...endCurrent(context, reason, cause, error) };
  return { ...afterCurrent, ...endQueue(afterCurrent, reason, cause, error) };
}

// Every session of one engine gets the same voices and limits objects; deriving them once per
// engine instead of once per session keeps a few hundred bytes out of every idle session.
// Both derived values are read-only, so sharing them between sessions is safe.
const derivedVoiceIds = new WeakMap<readonly VoiceInfo[], ReadonlySet<string>>();
const derivedLimits = new WeakMap<Partial<SessionLimits>, SessionLimits>();

/** A voice is named by its id, or `provider:id` to pick the provider explicitly. */
function voiceIdsOf(voices: readonly VoiceInfo[]): ReadonlySet<string> {
  let ids = derivedVoiceIds.get(voices);
  if (!ids) derivedVoiceIds.set(voices, (ids = new Set(voices.flatMap((v) => [v.id, `${v.provider}:${v.id}`]))));
  return ids;
}

function sessionLimits(given: Partial<SessionLimits> | undefined): SessionLimits {
  if (!given) return defaultSessionLimits;
  let limits = derivedLimits.get(given);
  if (!limits) derivedLimits.set(given, (limits = { ...defaultSessionLimits, ...given }));
  return limits;
}

const performanceNow = () => performance.now();

function timeoutError(code: ErrorCode, message: string): WireError {
  return { code, message };
}

const baseSetup = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  actions: {
    // Provided by the transport. Defaults do nothing so the pure machine can run alone.
    sendMessage: (_, _message: ServerMessage) => {},
    sendAudio: (_, _audio: AudioOut) => {},
    closeConnection: (_, _close: CloseRequest) => {},
    /** Observability hook: one call per ended utterance, including ones nobody can hear. */
    utteranceEnded: (_, _record: EndRecord) => {},
    utteranceAccepted: (_, _info: { id: string; stream: number; voice: string; mode: string }) => {},
    // The writers of the current utterance's meter (see AudioMeter for why it is mutable).
    countChunk: ({ context }, { pcm }: { pcm: Int16Array }) => context.current?.meter.count(pcm),
    restartGapClock: ({ context }) => context.current?.meter.restartGapClock(),
    // Never while the upstream waits for text: the first chunk after the wait must come as an
    // event, to clear the flag (and leave awaitingText).
    openAudioLane: ({ context }) => {
      if (context.current && !context.upstreamWaiting) context.current.meter.laneOpen = true;
    },
    closeAudioLane: ({ context }) => {
      if (context.current) context.current.meter.laneOpen = false;
    },

  },
  actors: {
    /** Synthesis of one utterance. Provided by src/ (provider + resampling + chunking). */
    synthesis: fromCallback<UpstreamCommand, UpstreamInput>(() => () => {}),
    /** Watches the client socket while paused; sends CLIENT_DRAINED once it fell below the low-water mark. */
    drainWatcher: fromCallback<{ type: 'NONE' }, { sessionId: string }>(() => () => {}),
  },
  guards: {
    isCurrentStream: ({ context, event }) =>
      'stream' in event && context.current !== null && event.stream === context.current.stream,
    speakIsAbsorbed: ({ context, event }) => isSpeak(event) && decide(context, event.request).kind !== 'accept',
    speakIsAppendToCurrent: ({ context, event }) =>
      isSpeak(event) && decide(context, event.request).kind === 'append-current',
    speakInterrupts: ({ event }) => isSpeak(event) && event.request.mode === 'interrupt',
    stopTargetsCurrent: ({ context, event }) =>
      isStop(event) &&
      context.current !== null &&
      !context.current.ended &&
      (event.id === undefined || event.id === context.current.id),
    hasQueued: ({ context }) => context.queue.length > 0,
    upstreamWaiting: ({ context }) => context.upstreamWaiting,
    chunkGapElapsed: ({ context }) =>
      context.current === null || context.now() - context.current.meter.quietSince >= context.limits.chunkGapTimeoutMs,
  },
  delays: {
    handshake: ({ context }) => context.limits.handshakeTimeoutMs,
    firstAudio: ({ context }) => context.limits.firstAudioTimeoutMs,
    // What is left of the gap since the upstream last showed life: one timer per gap, not per chunk.
    chunkGap: ({ context }) =>
      context.current === null
        ? 0
        : Math.max(0, context.limits.chunkGapTimeoutMs - (context.now() - context.current.meter.quietSince)),
    utterance: ({ context }) => context.limits.utteranceTimeoutMs,
    textIdle: ({ context }) => context.limits.textIdleTimeoutMs,
    textQuiet: ({ context }) => context.limits.textQuietMs,
    release: ({ context }) => context.limits.releaseTimeoutMs,
    writeStall: ({ context }) => context.limits.writeStallTimeoutMs,
  },
});

/** A timer that ends the current utterance with `code` (also its cause) and waits for its release. */
const endsOnTimeout = (code: ErrorCode, message: string) => ({
  target: '#session.active.stopping' as const,
  actions: [baseSetup.assign(({ context }) => endCurrent(context, 'timeout', code, timeoutError(code, message))), 'announceEnds' as const],
});

// Composite actions reference the stubs above by name, so they are declared in a second step.
export const sessionSetup = baseSetup.extend({
  actions: {
    /** The one place where end records become speak.end signals. */
    announceEnds: baseSetup.enqueueActions(({ context, enqueue }) => {
      for (const record of context.ending) {
        const message: ServerMessage = {
          type: 'speak.end',
          id: record.id,
          stream: record.stream,
          reason: record.reason,
          ...(record.error ? { error: record.error } : {}),
          stats: record.stats,
        };
        enqueue({ type: 'sendMessage', params: message });
        enqueue({ type: 'utteranceEnded', params: record });
      }
      enqueue.assign({ ending: [] });
    }),

    /** Accept a new utterance: it joins the queue (at the front for interrupt) and is acknowledged. */
    accept: baseSetup.enqueueActions(({ context, event, enqueue }) => {
      if (!isSpeak(event)) return;
      const r = event.request;
      const utterance: QueuedUtterance = {
        id: r.id,
        stream: context.nextStream,
        voice: r.voice ?? context.defaultVoice,
        text: r.text,
        final: r.final,
        acceptedAt: context.now(),
      };
      enqueue.assign({
        nextStream: context.nextStream + 1,
        queue: r.mode === 'interrupt' ? [utterance, ...context.queue] : [...context.queue, utterance],
      });
      enqueue({ type: 'sendMessage', params: { type: 'speak.accepted', id: r.id, stream: utterance.stream } });
      enqueue({
        type: 'utteranceAccepted',
        params: { id: r.id, stream: utterance.stream, voice: utterance.voice, mode: r.mode },
      });
    }),

    /** A speak frame that starts nothing: an append, or a refusal. Refusals never touch other utterances. */
    absorbSpeak: baseSetup.enqueueActions(({ context, event, enqueue }) => {
      if (!isSpeak(event)) return;
      const r = event.request;
      const d = decide(context, r);
      switch (d.kind) {
        case 'append-current': {
          const current = context.current!;
          enqueue.assign({ current: { ...current, textChars: current.textChars + r.text.length, final: r.final } });
          if (!current.ended) {
            enqueue.sendTo('upstream', { type: 'TEXT', text: r.text, final: r.final } satisfies UpstreamCommand);
          }
          if (r.final && current.ended) {
            context.usedIds.remember(r.id, false);
          }
          return;
        }
        case 'append-queued': {
          const queue = context.queue.map((u, i) =>
            i === d.index ? { ...u, text: u.text + r.text, final: r.final } : u,
          );
          enqueue.assign({ queue });
          return;
        }
        case 'append-ended':
          if (r.final) context.usedIds.close(r.id);
          return;
        case 'reject':
          enqueue({ type: 'sendMessage', params: { type: 'error', code: d.code, message: d.message, id: r.id } });
          return;
        case 'accept':
          return;
      }
    }),

    /** Move the head of the queue into the current slot (its upstream starts on entering `active`). */
    promoteNext: baseSetup.assign(({ context }) => {
      const [next, ...rest] = context.queue;
      if (!next) return { current: null };
      return {
        current: startCurrent(next, context.now),
        queue: rest,
        upstreamWaiting: false,
      };
    }),

    clearCurrent: assign({ current: null, upstreamWaiting: false }),

    /**
     * A chunk that came as an event (the lane was closed): it goes out only while its utterance
     * has not ended, so nothing of an ended utterance follows its end.
     */
    sendChunk: baseSetup.enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'UPSTREAM_AUDIO' || !context.current || context.current.ended) return;
      const { stream, meter } = context.current;
      enqueue({ type: 'sendAudio', params: { stream, seq: meter.seq, pcm: event.pcm } });
      enqueue({ type: 'countChunk', params: { pcm: event.pcm } });
      // Audio means the upstream is not waiting for text. Assigned only when it changes, so a
      // chunk does not copy the context.
      if (context.upstreamWaiting) enqueue.assign({ upstreamWaiting: false });
    }),

    cancelUpstream: sendTo('upstream', { type: 'CANCEL' } satisfies UpstreamCommand),
    flushUpstream: sendTo('upstream', { type: 'FLUSH' } satisfies UpstreamCommand),
    pauseUpstream: sendTo('upstream', { type: 'PAUSE' } satisfies UpstreamCommand),
    resumeUpstream: sendTo('upstream', { type: 'RESUME' } satisfies UpstreamCommand),
  },
});

export const sessionMachine = sessionSetup.createMachine({
  id: 'session',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    limits: sessionLimits(input.limits),
    voices: input.voices,
    voiceIds: voiceIdsOf(input.voices),
    defaultVoice: input.defaultVoice,
    sampleRates: input.sampleRates,
    sampleRate: input.sampleRates[0] ?? 24_000,
    now: input.now ?? performanceNow,
    nextStream: 1,
    current: null,
    queue: [],
    usedIds: new IdMemory(input.limits?.idMemory ?? defaultSessionLimits.idMemory),
    ending: [],
    upstreamWaiting: false,
  }),
  initial: 'handshake',
  states: {
    handshake: {
      after: {
        handshake: {
          target: 'ended',
          actions: [
            {
              type: 'sendMessage',
              params: { type: 'error', code: 'handshake_timeout', message: 'no session.start in time' },
            },
            { type: 'closeConnection', params: { code: 1008, reason: 'handshake_timeout' } },
          ],
        },
      },
      on: {
        START: {
          target: 'idle',
          actions: [
            assign(({ context, event }) => ({
              sampleRate: context.sampleRates.includes(event.sampleRate) ? event.sampleRate : context.sampleRate,
              defaultVoice:
                event.voice !== undefined && context.voiceIds.has(event.voice) ? event.voice : context.defaultVoice,
            })),
            {
              type: 'sendMessage',
              params: ({ context }) => ({
                type: 'session.ready',
                sessionId: context.sessionId,
                protocol: 1,
                format: { encoding: 'pcm_s16le', sampleRate: context.sampleRate, channels: 1 },
                voices: context.voices,
              }),
            },
          ],
        },
        BAD_START: {
          target: 'ended',
          actions: [
            {
              type: 'sendMessage',
              params: ({ event }) => ({
                type: 'error',
                code: event.code,
                message: event.message,
              }),
            },
            { type: 'closeConnection', params: { code: 1008, reason: 'session.start expected' } },
          ],
        },
        SPEAK: {
          target: 'ended',
          actions: [
            {
              type: 'sendMessage',
              params: { type: 'error', code: 'bad_request', message: 'the first frame must be session.start' },
            },
            { type: 'closeConnection', params: { code: 1008, reason: 'session.start expected' } },
          ],
        },
        STOP: {
          target: 'ended',
          actions: [
            {
              type: 'sendMessage',
              params: { type: 'error', code: 'bad_request', message: 'the first frame must be session.start' },
            },
            { type: 'closeConnection', params: { code: 1008, reason: 'session.start expected' } },
          ],
        },
        CLIENT_GONE: 'ended',
        SHUTDOWN: {
          target: 'ended',
          actions: { type: 'closeConnection', params: { code: 1001, reason: 'server shutting down' } },
        },
      },
    },

    idle: {
      on: {
        SPEAK: [
          { guard: 'speakIsAbsorbed', actions: 'absorbSpeak' },
          { target: 'active', actions: ['accept', 'promoteNext'] },
        ],
        // Nothing plays and nothing waits: STOP is a harmless no-op here.
        STOP: {},
        CLIENT_GONE: 'ended',
        SHUTDOWN: {
          target: 'ended',
          actions: { type: 'closeConnection', params: { code: 1001, reason: 'server shutting down' } },
        },
      },
    },

    active: {
      // The upstream of the current utterance lives exactly as long as this state.
      invoke: {
        id: 'upstream',
        src: 'synthesis',
        input: ({ context }): UpstreamInput => {
          const c = context.current!;
          return {
            sessionId: context.sessionId,
            lane: c.meter,
            id: c.id,
            stream: c.stream,
            voice: c.voice,
            text: c.initialText,
            final: c.final,
            sampleRate: context.sampleRate,
          };
        },
        onError: {
          target: '.stopping',
          actions: [
            assign(({ context }) =>
              endCurrent(context, 'failed', 'upstream_actor_error', {
                code: 'internal',
                message: 'synthesis failed unexpectedly',
              }),
            ),
            'announceEnds',
          ],
        },
      },
      initial: 'live',
      on: {
        SPEAK: [
          { guard: 'speakIsAbsorbed', actions: 'absorbSpeak' },
          // Here the current utterance has already ended (stopping): an interrupt only clears the queue.
          {
            guard: 'speakInterrupts',
            actions: [
              assign(({ context }) => endQueue(context, 'superseded', 'interrupt')),
              'announceEnds',
              'accept',
            ],
          },
          { actions: 'accept' },
        ],
        // Queued utterances only (the playing one is live's): all of them, or the one with that id.
        STOP: {
          actions: [
            assign(({ context, event }) =>
              isStop(event) ? endQueue(context, 'stopped', 'stop', undefined, event.id) : {},
            ),
            'announceEnds',
          ],
        },
        CLIENT_GONE: {
          target: 'ended',
          actions: [
            assign(({ context }) =>
              endEverything(context, 'stopped', 'client_gone'),
            ),
            'announceEnds',
          ],
        },
        SHUTDOWN: {
          target: 'ended',
          actions: [
            assign(({ context }) =>
              endEverything(context, 'failed', 'shutdown', {
                code: 'shutting_down',
                message: 'the server is shutting down',
              }),
            ),
            'announceEnds',
            { type: 'closeConnection', params: { code: 1001, reason: 'server shutting down' } },
          ],
        },
      },
      states: {
        live: {
          after: {
            utterance: endsOnTimeout('utterance_timeout', 'the utterance ran past its overall time limit'),
          },
          on: {
            SPEAK: [
              { guard: 'speakIsAbsorbed', actions: 'absorbSpeak' },
              {
                guard: 'speakInterrupts',
                target: 'stopping',
                actions: [
                  assign(({ context }) => endEverything(context, 'superseded', 'interrupt')),
                  'announceEnds',
                  'accept',
                ],
              },
              { actions: 'accept' },
            ],
            STOP: [
              {
                guard: 'stopTargetsCurrent',
                target: 'stopping',
                actions: [
                  assign(({ context, event }) => {
                    const afterCurrent = { ...context, ...endCurrent(context, 'stopped', 'stop') };
                    const all = isStop(event) && event.id === undefined;
                    return all ? { ...afterCurrent, ...endQueue(afterCurrent, 'stopped', 'stop') } : afterCurrent;
                  }),
                  'announceEnds',
                ],
              },
              // Any other STOP falls through to `active`, which ends queued utterances.
            ],
            UPSTREAM_DONE: {
              guard: 'isCurrentStream',
              target: 'stopping',
              actions: [assign(({ context }) => endCurrent(context, 'completed', 'completed')), 'announceEnds'],
            },
            UPSTREAM_ERROR: {
              guard: 'isCurrentStream',
              target: 'stopping',
              actions: [
                assign(({ context, event }) =>
                  event.type === 'UPSTREAM_ERROR'
                    ? endCurrent(context, event.reason, event.error.code, event.error)
                    : {},
                ),
                'announceEnds',
              ],
            },
          },
          initial: 'connecting',
          states: {
            connecting: {
              initial: 'synthesizing',
              on: {
                UPSTREAM_AUDIO: { guard: 'isCurrentStream', target: 'streaming', actions: 'sendChunk' },
              },
              states: {
                synthesizing: {
                  after: {
                    firstAudio: endsOnTimeout('first_audio_timeout', 'the provider sent no audio in time'),
                  },
                  on: {
                    UPSTREAM_WAITING_TEXT: { guard: 'isCurrentStream', target: 'awaitingText' },
                  },
                },
                awaitingText: {
                  after: {
                    // Text held for its sentence's end is spoken after a quiet while (targetless: the
                    // text-idle clock keeps running from the last text).
                    textQuiet: { actions: 'flushUpstream' },
                    textIdle: endsOnTimeout('text_idle_timeout', 'no more text arrived for an open utterance'),
                  },
                  on: {
                    // New text restarts the wait for text.
                    SPEAK: {
                      guard: 'speakIsAppendToCurrent',
                      target: 'awaitingText',
                      reenter: true,
                      actions: 'absorbSpeak',
                    },
                  },
                },
              },
            },
            streaming: {
              initial: 'flowing',
              states: {
                flowing: {
                  // Here a chunk changes nothing but the tallies: it may skip the event (AudioLane).
                  entry: 'openAudioLane',
                  exit: 'closeAudioLane',
                  after: {
                    // The timer ran out of the remaining gap: a stall, unless audio came meanwhile,
                    // in which case wait out what is left of the gap since that chunk.
                    chunkGap: [
                      { guard: 'chunkGapElapsed', ...endsOnTimeout('upstream_stalled', 'the provider stopped sending audio') },
                      { target: 'flowing', reenter: true },
                    ],
                  },
                  on: {
                    UPSTREAM_AUDIO: { guard: 'isCurrentStream', actions: 'sendChunk' },
                    UPSTREAM_WAITING_TEXT: {
                      guard: 'isCurrentStream',
                      target: 'awaitingText',
                      actions: assign({ upstreamWaiting: true }),
                    },
                    UPSTREAM_QUEUED: { guard: 'isCurrentStream', target: 'queued' },
                    CLIENT_BACKPRESSURE: 'paused',
                  },
                },
                queued: {
                  // The next piece waits its turn for a provider slot (every synth worker busy): not a
                  // stall, so no chunk-gap timer here. The utterance's own time limit still bounds it,
                  // and the provider refuses new utterances (provider_busy) before its queue gets long.
                  on: {
                    UPSTREAM_DEQUEUED: { guard: 'isCurrentStream', target: 'flowing', actions: 'restartGapClock' },
                    UPSTREAM_AUDIO: { guard: 'isCurrentStream', target: 'flowing', actions: 'sendChunk' },
                    UPSTREAM_WAITING_TEXT: {
                      guard: 'isCurrentStream',
                      target: 'awaitingText',
                      actions: assign({ upstreamWaiting: true }),
                    },
                    CLIENT_BACKPRESSURE: 'paused',
                  },
                },
                awaitingText: {
                  after: {
                    // Text held for its sentence's end is spoken after a quiet while (targetless: the
                    // text-idle clock keeps running from the last text).
                    textQuiet: { actions: 'flushUpstream' },
                    textIdle: endsOnTimeout('text_idle_timeout', 'no more text arrived for an open utterance'),
                  },
                  on: {
                    UPSTREAM_AUDIO: { guard: 'isCurrentStream', target: 'flowing', actions: 'sendChunk' },
                    // Text came and its piece waits for a provider slot: waiting its turn, not for text.
                    UPSTREAM_QUEUED: { guard: 'isCurrentStream', target: 'queued', actions: assign({ upstreamWaiting: false }) },
                    SPEAK: {
                      guard: 'speakIsAppendToCurrent',
                      target: 'awaitingText',
                      reenter: true,
                      actions: 'absorbSpeak',
                    },
                    CLIENT_BACKPRESSURE: 'paused',
                  },
                },
                paused: {
                  // The client is not reading: stop pulling from the provider until it drains.
                  entry: ['pauseUpstream', 'openAudioLane'],
                  exit: ['resumeUpstream', 'closeAudioLane'],
                  invoke: {
                    id: 'drainWatcher',
                    src: 'drainWatcher',
                    input: ({ context }) => ({ sessionId: context.sessionId }),
                  },
                  after: {
                    writeStall: {
                      target: '#session.ended',
                      actions: [
                        assign(({ context }) =>
                          endEverything(context, 'failed', 'client_stalled', {
                            code: 'client_stalled',
                            message: 'the client stopped reading audio',
                          }),
                        ),
                        'announceEnds',
                        { type: 'closeConnection', params: { code: 1008, reason: 'client_stalled' } },
                      ],
                    },
                  },
                  on: {
                    // Audio already in flight from the provider still goes out, in order. While the
                    // upstream waits for text, chunks come as events, so the first one clears the flag.
                    UPSTREAM_AUDIO: { guard: 'isCurrentStream', actions: ['sendChunk', 'openAudioLane'] },
                    UPSTREAM_WAITING_TEXT: { guard: 'isCurrentStream', actions: [assign({ upstreamWaiting: true }), 'closeAudioLane'] },
                    // The gap clock starts over: the upstream was held back on purpose while paused.
                    CLIENT_DRAINED: [
                      { guard: 'upstreamWaiting', target: 'awaitingText' },
                      { target: 'flowing', actions: 'restartGapClock' },
                    ],
                  },
                },
              },
            },
          },
        },
        stopping: {
          // The end signal already went out; now wait (bounded) until the upstream let go,
          // so the next owner starts only after the old one released.
          entry: 'cancelUpstream',
          after: { release: { target: 'releasing' } },
          on: {
            UPSTREAM_RELEASED: { guard: 'isCurrentStream', target: 'releasing' },
          },
        },
        releasing: {
          // Transient: pick the next utterance or go idle.
          always: [
            { guard: 'hasQueued', target: '#session.active', reenter: true, actions: 'promoteNext' },
            { target: '#session.idle', actions: 'clearCurrent' },
          ],
        },
      },
    },

    ended: {
      type: 'final',
      entry: 'clearCurrent',
    },
  },
});

export type SessionMachine = typeof sessionMachine;
