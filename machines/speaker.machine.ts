// The speaker statechart: the queue and the lifecycle of one session's utterances. The
// connection chart (connection.machine.ts) invokes it once the handshake is done and routes
// the client's speak, stop and backpressure events to it.
//
// Ownership: the upstream synthesis of the current utterance is invoked by `active`,
// the state that encloses its whole lifetime (connecting, streaming and the
// release wait in stopping). Every timer is an `after` of the state whose wait it
// bounds, so leaving the state cancels it. The machine does no I/O: messages,
// audio and ends leave through the actions and actors that src/ provides.
//
// Completion: every speak.end leaves through `announceEnds`, the one place that
// turns end records into end signals; an utterance is marked ended once (by one of the
// named `end…` actions, whose parameters are its reason and cause) and its record queued
// for that action in the same transition.
import { assertEvent, assign, enqueueActions, fromCallback, sendTo, setup } from 'xstate';
import type {
  AssistantAudible,
  EndReason,
  EndRecord,
  ErrorCode,
  ServerMessage,
  SessionLimits,
  SpeakerEndCause,
  SpeakerEvent,
  UpstreamCommand,
  UpstreamInput,
  UtteranceEnded,
  WireError,
} from './types.js';
import { wireError } from './errors.js';
import {
  classifySpeak,
  endOfCurrent,
  endOfQueued,
  startCurrent,
  type CurrentUtterance,
  type QueuedUtterance,
  type SpeakDecision,
  IdMemory,
} from './utterances.js';

/** What the connection starts its speaker with, once the handshake settled the format. */
export interface SpeakerInput {
  sessionId: string;
  limits: SessionLimits;
  voiceIds: ReadonlySet<string>;
  /** The session's voice (session.start may have chosen one). */
  defaultVoice: string;
  /** The negotiated sample rate. */
  sampleRate: number;
  now: () => number;
  /**
   * What the parent wants to hear: whether the assistant is audible (a session that listens)
   * and every utterance's end (a session with the agent turn). Default none: a session that
   * only speaks pays no event through its connection per utterance.
   */
  reports?: { audible: boolean; ends: boolean };
}

export interface SpeakerContext {
  sessionId: string;
  limits: SessionLimits;
  voiceIds: ReadonlySet<string>;
  defaultVoice: string;
  sampleRate: number;
  now: () => number;
  /** What the parent wants reported (SpeakerInput.reports). */
  reports: { readonly audible: boolean; readonly ends: boolean };
  nextStream: number;
  current: CurrentUtterance | null;
  queue: QueuedUtterance[];
  usedIds: IdMemory;
  /** End records produced by this step, waiting for `announceEnds`. */
  ending: EndRecord[];
  /** Why the speaker reached its end; its output, read by the connection. */
  endCause: SpeakerEndCause | null;
  /**
   * The client's latest `playback` report per stream, newest last, for the last `playedStreams`
   * streams it reported (issue 18 reads what the user heard of an interrupted utterance).
   */
  played: ReadonlyArray<{ stream: number; playedMs: number }>;
}

const noReports = { audible: false, ends: false } as const;

/** How many streams' playback reports the speaker keeps. */
export const playedStreams = 8;

export interface SpeakerOutput {
  cause: SpeakerEndCause | null;
}

export interface AudioOut {
  stream: number;
  seq: number;
  pcm: Int16Array;
}

/** How an utterance ends: the wire reason, the internal cause, and the error code (message from the error table). */
/** An accepted utterance, as the speaker reports it (with its text: a recording gateway keeps it). */
export interface UtteranceAcceptedInfo {
  id: string;
  stream: number;
  voice: string;
  mode: string;
  text: string;
  final: boolean;
}

export interface EndParams {
  reason: EndReason;
  cause: string;
  error?: ErrorCode;
}

type SpeakEvent = Extract<SpeakerEvent, { type: 'SPEAK' }>;
type StopEvent = Extract<SpeakerEvent, { type: 'STOP' }>;

const isSpeak = (e: SpeakerEvent): e is SpeakEvent => e.type === 'SPEAK';
const isStop = (e: SpeakerEvent): e is StopEvent => e.type === 'STOP';

/**
 * What a speak frame means for this session, decided once per frame: the guard that picks its
 * transition and the action that carries it out ask the same question of the same context, so the
 * verdict stays with the event for as long as the context it was drawn from (and the id memory,
 * the one part of it written in place) is unchanged.
 */
const verdicts = new WeakMap<SpeakEvent, { context: SpeakerContext; ids: number; decision: SpeakDecision }>();

function decide(context: SpeakerContext, event: SpeakEvent): SpeakDecision {
  const kept = verdicts.get(event);
  if (kept && kept.context === context && kept.ids === context.usedIds.version) return kept.decision;
  const decision = classifySpeak(context, event.request, context.limits, context.voiceIds);
  verdicts.set(event, { context, ids: context.usedIds.version, decision });
  return decision;
}

/** Mark the current utterance ended (once) and queue its end record. */
function endCurrent(
  context: SpeakerContext,
  reason: EndReason,
  cause: string,
  error?: WireError,
): Partial<SpeakerContext> {
  const current = context.current;
  if (!current || current.ended) return {};
  const reported = context.played.find((p) => p.stream === current.stream)?.playedMs;
  const heardChars = current.outlet.heardChars(current.outlet.playedMs(context.sampleRate, reported), context.sampleRate);
  const record = endOfCurrent(current, reason, cause, context.sampleRate, error, heardChars);
  // Sealed before its end goes out: nothing of it is numbered or passed after this.
  current.outlet.seal();
  context.usedIds.remember(current.id, !current.final);
  return {
    current: { ...current, ended: true },
    ending: [...context.ending, record],
  };
}

/** End every queued utterance (or the one with `onlyId`) and queue their end records. */
function endQueue(
  context: SpeakerContext,
  reason: EndReason,
  cause: string,
  error?: WireError,
  onlyId?: string,
): Partial<SpeakerContext> {
  const ended = context.queue.filter((u) => onlyId === undefined || u.id === onlyId);
  if (ended.length === 0) return {};
  for (const u of ended) context.usedIds.remember(u.id, !u.final);
  return {
    queue: context.queue.filter((u) => !ended.includes(u)),
    ending: [...context.ending, ...ended.map((u) => endOfQueued(u, reason, cause, error))],
  };
}

function endEverything(context: SpeakerContext, reason: EndReason, cause: string, error?: WireError): Partial<SpeakerContext> {
  // Only what changed: with nothing to end (an idle speaker told the client is gone) it is empty.
  const ofCurrent = endCurrent(context, reason, cause, error);
  const ofQueue = endQueue(ofCurrent.ending ? { ...context, ...ofCurrent } : context, reason, cause, error);
  return { ...ofCurrent, ...ofQueue };
}

const errorOf = (code: ErrorCode | undefined) => (code === undefined ? undefined : wireError(code));

const baseSetup = setup({
  types: {
    context: {} as SpeakerContext,
    events: {} as SpeakerEvent,
    input: {} as SpeakerInput,
    output: {} as SpeakerOutput,
  },
  actions: {
    // Provided by the transport. Defaults do nothing so the pure machine can run alone.
    sendMessage: (_, _message: ServerMessage) => {},
    sendAudio: (_, _audio: AudioOut) => {},
    /** Observability hook: one call per ended utterance, including ones nobody can hear. */
    utteranceEnded: (_, _record: EndRecord) => {},
    utteranceAccepted: (_, _info: UtteranceAcceptedInfo) => {},
    /** Text appended to an open utterance (a session whose gateway records it, to move it elsewhere). */
    utteranceAppended: (_, _info: { stream: number; text: string; final: boolean }) => {},
    // The chart's orders to the current utterance's outlet (see UtteranceOutlet for why it is mutable).
    restartGapClock: ({ context }) => context.current?.outlet.restartGapClock(),
    openOutlet: ({ context }) => context.current?.outlet.open(),
    closeOutlet: ({ context }) => context.current?.outlet.close(),
    /**
     * Tell the connection (the parent, when there is one) whether the assistant is audible: from
     * an utterance's first audio frame (entering `streaming`) to its end (leaving it). A completed
     * end (left on UPSTREAM_DONE) says what the client still plays: the connection keeps the
     * assistant audible for that tail.
     */
    reportAudible: enqueueActions(({ context, event, self, enqueue }, { audible }: { audible: boolean }) => {
      if (!self._parent || !context.reports.audible) return;
      const current = context.current;
      const tail = !audible && event.type === 'UPSTREAM_DONE' && current ? { stream: current.stream, ...current.outlet.playsOn(context.sampleRate) } : undefined;
      enqueue.sendParent({ type: 'ASSISTANT_AUDIBLE', audible, ...(tail ? { tail } : {}) } satisfies AssistantAudible);
    }),
    /** The client's playback report of an accepted stream: its latest playedMs, bounded. */
    notePlayback: assign(({ context, event }) => {
      if (event.type !== 'PLAYBACK' || event.stream >= context.nextStream) return {};
      const before = context.played.find((p) => p.stream === event.stream);
      if (before && before.playedMs >= event.playedMs) return {};
      const others = context.played.filter((p) => p.stream !== event.stream);
      return { played: [...others.slice(-(playedStreams - 1)), { stream: event.stream, playedMs: event.playedMs }] };
    }),
  },
  actors: {
    /** The upstream of one utterance: its synthesis, provided by src/ (provider + resampling + chunking). */
    upstream: fromCallback<UpstreamCommand, UpstreamInput>(() => () => {}),
    /** Watches the client socket while paused; sends CLIENT_DRAINED once it fell below the low-water mark. */
    drainWatcher: fromCallback<{ type: 'NONE' }, { sessionId: string }>(() => () => {}),
  },
  guards: {
    isCurrentStream: ({ context, event }) =>
      'stream' in event && context.current !== null && event.stream === context.current.stream,
    /** The current utterance's upstream is done and has let go already (UPSTREAM_DONE `released`). */
    isCurrentStreamReleased: ({ context, event }) =>
      event.type === 'UPSTREAM_DONE' && event.released === true && context.current !== null && event.stream === context.current.stream,
    speakIsAbsorbed: ({ context, event }) => isSpeak(event) && decide(context, event).kind !== 'accept',
    speakIsAppendToCurrent: ({ context, event }) =>
      isSpeak(event) && decide(context, event).kind === 'append-current',
    speakInterrupts: ({ event }) => isSpeak(event) && event.request.mode === 'interrupt',
    stopTargetsCurrent: ({ context, event }) =>
      isStop(event) &&
      context.current !== null &&
      !context.current.ended &&
      (event.id === undefined || event.id === context.current.id),
    hasQueued: ({ context }) => context.queue.length > 0,
    chunkGapElapsed: ({ context }) =>
      context.current === null || context.current.outlet.quietFor() >= context.limits.chunkGapTimeoutMs,
  },
  delays: {
    firstAudio: ({ context }) => context.limits.firstAudioTimeoutMs,
    // What is left of the gap since the upstream last showed life: one timer per gap, not per chunk.
    chunkGap: ({ context }) =>
      context.current === null
        ? 0
        : Math.max(0, context.limits.chunkGapTimeoutMs - context.current.outlet.quietFor()),
    utterance: ({ context }) => context.limits.utteranceTimeoutMs,
    textIdle: ({ context }) => context.limits.textIdleTimeoutMs,
    textQuiet: ({ context }) => context.limits.textQuietMs,
    release: ({ context }) => context.limits.releaseTimeoutMs,
    writeStall: ({ context }) => context.limits.writeStallTimeoutMs,
  },
});

// Composite actions reference the stubs above by name, so they are declared in a second step.
export const speakerSetup = baseSetup.extend({
  actions: {
    /** The current utterance ends (once). */
    endCurrent: assign(({ context }: { context: SpeakerContext }, p: EndParams) => endCurrent(context, p.reason, p.cause, errorOf(p.error))),
    /** The current utterance ends as its upstream reported (UPSTREAM_ERROR). */
    endCurrentAsReported: baseSetup.assign(({ context, event }) => {
      assertEvent(event, 'UPSTREAM_ERROR');
      return endCurrent(context, event.reason, event.error.code, event.error);
    }),
    /** Every queued utterance ends; the current one, if any, keeps playing. */
    endQueued: assign(({ context }: { context: SpeakerContext }, p: EndParams) => endQueue(context, p.reason, p.cause, errorOf(p.error))),
    /** The current utterance and every queued one end. */
    endEverything: assign(({ context }: { context: SpeakerContext }, p: EndParams) => endEverything(context, p.reason, p.cause, errorOf(p.error))),
    /**
     * What a STOP names ends as stopped: with no id, the current utterance and the queue;
     * with an id, the utterance of that id, playing or queued.
     */
    endStopTargets: baseSetup.assign(({ context, event }) => {
      assertEvent(event, 'STOP');
      const current = context.current;
      const targetsCurrent = current !== null && (event.id === undefined || event.id === current.id);
      const afterCurrent = targetsCurrent ? { ...context, ...endCurrent(context, 'stopped', 'stop') } : context;
      return { ...afterCurrent, ...endQueue(afterCurrent, 'stopped', 'stop', undefined, event.id) };
    }),
    /** The speaker reached its end for `cause`: its output. */
    recordEndCause: assign((_: unknown, { cause }: { cause: SpeakerEndCause }) => ({ endCause: cause })),

    /** The one place where end records become speak.end signals. */
    announceEnds: baseSetup.enqueueActions(({ context, self, enqueue }) => {
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
        // The connection routes it to the agent turn, which needs the reason and what was heard.
        if (self._parent && context.reports.ends) {
          enqueue.sendParent({
            type: 'UTTERANCE_ENDED',
            id: record.id,
            stream: record.stream,
            reason: record.reason,
            ...(record.error ? { error: record.error } : {}),
            heardChars: record.heardChars,
          } satisfies UtteranceEnded);
        }
      }
      // Assigned only when there was something to announce: an assign copies the context.
      if (context.ending.length > 0) enqueue.assign({ ending: [] });
    }),

    /** Accept a new utterance: it joins the queue (at the front for interrupt) and is acknowledged. */
    accept: baseSetup.enqueueActions(({ context, event, enqueue }) => {
      if (!isSpeak(event)) return;
      const r = event.request;
      const stream = r.stream ?? context.nextStream;
      const utterance: QueuedUtterance = {
        id: r.id,
        stream,
        voice: r.voice ?? context.defaultVoice,
        text: r.text,
        final: r.final,
        acceptedAt: context.now(),
      };
      enqueue.assign({
        nextStream: Math.max(context.nextStream, stream + 1),
        queue: r.mode === 'interrupt' ? [utterance, ...context.queue] : [...context.queue, utterance],
      });
      enqueue({ type: 'sendMessage', params: { type: 'speak.accepted', id: r.id, stream: utterance.stream } });
      enqueue({
        type: 'utteranceAccepted',
        params: { id: r.id, stream: utterance.stream, voice: utterance.voice, mode: r.mode, text: r.text, final: r.final },
      });
    }),

    /** A speak frame that starts nothing: an append, or a refusal. Refusals never touch other utterances. */
    absorbSpeak: baseSetup.enqueueActions(({ context, event, enqueue }) => {
      if (!isSpeak(event)) return;
      const r = event.request;
      const d = decide(context, event);
      switch (d.kind) {
        case 'append-current': {
          const current = context.current!;
          enqueue.assign({ current: { ...current, textChars: current.textChars + r.text.length, final: r.final } });
          if (!current.ended) {
            enqueue.sendTo('upstream', { type: 'TEXT', text: r.text, final: r.final } satisfies UpstreamCommand);
            enqueue({ type: 'utteranceAppended', params: { stream: current.stream, text: r.text, final: r.final } });
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
          enqueue({ type: 'utteranceAppended', params: { stream: context.queue[d.index]!.stream, text: r.text, final: r.final } });
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
      };
    }),

    clearCurrent: baseSetup.assign({ current: null }),

    /**
     * A chunk that came as an event (the outlet was closed): numbered by the outlet, which
     * refuses it once sealed, so nothing of an ended utterance follows its end.
     */
    sendChunk: baseSetup.enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'UPSTREAM_AUDIO' || !context.current) return;
      const seq = context.current.outlet.number(event.pcm);
      if (seq >= 0) enqueue({ type: 'sendAudio', params: { stream: context.current.stream, seq, pcm: event.pcm } });
    }),

    cancelUpstream: sendTo('upstream', { type: 'CANCEL' } satisfies UpstreamCommand),
    flushUpstream: sendTo('upstream', { type: 'FLUSH' } satisfies UpstreamCommand),
    pauseUpstream: sendTo('upstream', { type: 'PAUSE' } satisfies UpstreamCommand),
    resumeUpstream: sendTo('upstream', { type: 'RESUME' } satisfies UpstreamCommand),
  },
});

/** A timer that ends the current utterance with `code` (also its cause) and waits for its release. */
const endsOnTimeout = (code: ErrorCode) => ({
  target: '#speaker.active.stopping' as const,
  actions: [{ type: 'endCurrent' as const, params: { reason: 'timeout', cause: code, error: code } satisfies EndParams }, 'announceEnds' as const],
});

export const speakerMachine = speakerSetup.createMachine({
  id: 'speaker',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    limits: input.limits,
    voiceIds: input.voiceIds,
    defaultVoice: input.defaultVoice,
    sampleRate: input.sampleRate,
    now: input.now,
    reports: input.reports ?? noReports,
    nextStream: 1,
    current: null,
    queue: [],
    usedIds: new IdMemory(input.limits.idMemory),
    ending: [],
    endCause: null,
    played: [],
  }),
  output: ({ context }) => ({ cause: context.endCause }),
  initial: 'idle',
  on: {
    // The connection ends the speaker: everything it holds ends once, then it is done.
    CLIENT_GONE: {
      target: '.ended',
      actions: [
        { type: 'endEverything', params: { reason: 'stopped', cause: 'client_gone' } },
        'announceEnds',
        { type: 'recordEndCause', params: { cause: 'client_gone' } },
      ],
    },
    SHUTDOWN: {
      target: '.ended',
      actions: [
        { type: 'endEverything', params: { reason: 'failed', cause: 'shutdown', error: 'shutting_down' } },
        'announceEnds',
        { type: 'recordEndCause', params: { cause: 'shutdown' } },
      ],
    },
    PLAYBACK: { actions: 'notePlayback' },
  },
  states: {
    idle: {
      on: {
        SPEAK: [
          { guard: 'speakIsAbsorbed', actions: 'absorbSpeak' },
          { target: 'active', actions: ['accept', 'promoteNext'] },
        ],
        // Nothing plays and nothing waits: STOP is a harmless no-op here.
        STOP: {},
      },
    },

    active: {
      // The upstream of the current utterance lives exactly as long as this state.
      invoke: {
        id: 'upstream',
        src: 'upstream',
        input: ({ context }): UpstreamInput => {
          const c = context.current!;
          return {
            sessionId: context.sessionId,
            lane: c.outlet,
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
            { type: 'endCurrent', params: { reason: 'failed', cause: 'upstream_actor_error', error: 'internal' } },
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
            actions: [{ type: 'endQueued', params: { reason: 'superseded', cause: 'interrupt' } }, 'announceEnds', 'accept'],
          },
          { actions: 'accept' },
        ],
        // Queued utterances only (the playing one is live's): all of them, or the one with that id.
        STOP: { actions: ['endStopTargets', 'announceEnds'] },
      },
      states: {
        live: {
          after: {
            utterance: endsOnTimeout('utterance_timeout'),
          },
          on: {
            SPEAK: [
              { guard: 'speakIsAbsorbed', actions: 'absorbSpeak' },
              {
                guard: 'speakInterrupts',
                target: 'stopping',
                actions: [{ type: 'endEverything', params: { reason: 'superseded', cause: 'interrupt' } }, 'announceEnds', 'accept'],
              },
              { actions: 'accept' },
            ],
            STOP: [
              { guard: 'stopTargetsCurrent', target: 'stopping', actions: ['endStopTargets', 'announceEnds'] },
              // Any other STOP falls through to `active`, which ends queued utterances.
            ],
            UPSTREAM_DONE: [
              // Done and already let go: straight on (the law holds: the old owner released first).
              {
                guard: 'isCurrentStreamReleased',
                target: 'releasing',
                actions: [{ type: 'endCurrent', params: { reason: 'completed', cause: 'completed' } }, 'announceEnds'],
              },
              {
                guard: 'isCurrentStream',
                target: 'stopping',
                actions: [{ type: 'endCurrent', params: { reason: 'completed', cause: 'completed' } }, 'announceEnds'],
              },
            ],
            UPSTREAM_ERROR: {
              guard: 'isCurrentStream',
              target: 'stopping',
              actions: ['endCurrentAsReported', 'announceEnds'],
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
                    firstAudio: endsOnTimeout('first_audio_timeout'),
                  },
                  on: {
                    UPSTREAM_AWAITING_TEXT: { guard: 'isCurrentStream', target: 'awaitingText' },
                  },
                },
                awaitingText: {
                  after: {
                    // Text held for its sentence's end is spoken after a quiet while (targetless: the
                    // text-idle clock keeps running from the last text).
                    textQuiet: { actions: 'flushUpstream' },
                    textIdle: endsOnTimeout('text_idle_timeout'),
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
              // Audible from the utterance's first audio to its end (whatever ends it).
              entry: { type: 'reportAudible', params: { audible: true } },
              exit: { type: 'reportAudible', params: { audible: false } },
              on: {
                // Barge-in (the listener heard the user over this utterance): the STOP path, reason interrupted.
                INTERRUPT: {
                  target: '#speaker.active.stopping',
                  actions: [{ type: 'endEverything', params: { reason: 'interrupted', cause: 'barge_in' } }, 'announceEnds'],
                },
              },
              initial: 'flowing',
              states: {
                flowing: {
                  // Here a chunk changes nothing but the tallies: the upstream may pass it (UtteranceOutlet).
                  entry: 'openOutlet',
                  exit: 'closeOutlet',
                  after: {
                    // The timer ran out of the remaining gap: a stall, unless audio came meanwhile,
                    // in which case wait out what is left of the gap since that chunk.
                    chunkGap: [
                      { guard: 'chunkGapElapsed', ...endsOnTimeout('upstream_stalled') },
                      { target: 'flowing', reenter: true },
                    ],
                  },
                  on: {
                    UPSTREAM_AUDIO: { guard: 'isCurrentStream', actions: 'sendChunk' },
                    UPSTREAM_AWAITING_TEXT: { guard: 'isCurrentStream', target: 'awaitingText' },
                    UPSTREAM_QUEUED: { guard: 'isCurrentStream', target: 'queued' },
                    CLIENT_BACKPRESSURE: 'paused.receiving',
                  },
                },
                queued: {
                  // The next piece waits its turn for a provider slot (every synth worker busy): not a
                  // stall, so no chunk-gap timer here. The utterance's own time limit still bounds it,
                  // and the provider refuses new utterances (provider_busy) before its queue gets long.
                  on: {
                    UPSTREAM_DEQUEUED: { guard: 'isCurrentStream', target: 'flowing', actions: 'restartGapClock' },
                    UPSTREAM_AUDIO: { guard: 'isCurrentStream', target: 'flowing', actions: 'sendChunk' },
                    UPSTREAM_AWAITING_TEXT: { guard: 'isCurrentStream', target: 'awaitingText' },
                    CLIENT_BACKPRESSURE: 'paused.receiving',
                  },
                },
                awaitingText: {
                  after: {
                    // Text held for its sentence's end is spoken after a quiet while (targetless: the
                    // text-idle clock keeps running from the last text).
                    textQuiet: { actions: 'flushUpstream' },
                    textIdle: endsOnTimeout('text_idle_timeout'),
                  },
                  on: {
                    UPSTREAM_AUDIO: { guard: 'isCurrentStream', target: 'flowing', actions: 'sendChunk' },
                    // Text came and its piece waits for a provider slot: waiting its turn, not for text.
                    UPSTREAM_QUEUED: { guard: 'isCurrentStream', target: 'queued' },
                    SPEAK: {
                      guard: 'speakIsAppendToCurrent',
                      target: 'awaitingText',
                      reenter: true,
                      actions: 'absorbSpeak',
                    },
                    CLIENT_BACKPRESSURE: 'paused.awaitingText',
                  },
                },
                paused: {
                  // The client is not reading: stop pulling from the provider until it drains.
                  entry: 'pauseUpstream',
                  exit: 'resumeUpstream',
                  invoke: {
                    id: 'drainWatcher',
                    src: 'drainWatcher',
                    input: ({ context }) => ({ sessionId: context.sessionId }),
                  },
                  after: {
                    // The connection closes (1008) once the speaker is done for this cause.
                    writeStall: {
                      target: '#speaker.ended',
                      actions: [
                        { type: 'endEverything', params: { reason: 'failed', cause: 'client_stalled', error: 'client_stalled' } },
                        'announceEnds',
                        { type: 'recordEndCause', params: { cause: 'client_stalled' } },
                      ],
                    },
                  },
                  // Which wait a drain returns to is a state, not a flag.
                  initial: 'receiving',
                  states: {
                    receiving: {
                      // Audio already in flight from the provider still goes out, in order, past the machine.
                      entry: 'openOutlet',
                      exit: 'closeOutlet',
                      on: {
                        UPSTREAM_AUDIO: { guard: 'isCurrentStream', actions: 'sendChunk' },
                        UPSTREAM_AWAITING_TEXT: { guard: 'isCurrentStream', target: 'awaitingText' },
                        // The gap clock starts over: the upstream was held back on purpose while paused.
                        CLIENT_DRAINED: { target: '#speaker.active.live.streaming.flowing', actions: 'restartGapClock' },
                      },
                    },
                    awaitingText: {
                      // Chunks come as events here: the first one after the wait leaves it.
                      on: {
                        UPSTREAM_AUDIO: { guard: 'isCurrentStream', target: 'receiving', actions: 'sendChunk' },
                        CLIENT_DRAINED: '#speaker.active.live.streaming.awaitingText',
                      },
                    },
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
            { guard: 'hasQueued', target: '#speaker.active', reenter: true, actions: 'promoteNext' },
            { target: '#speaker.idle', actions: 'clearCurrent' },
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

export type SpeakerMachine = typeof speakerMachine;
