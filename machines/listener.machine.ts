// The listener statechart: one session's hearing. It turns voice-activity decisions into
// turns (input.speech_started → partial transcripts → input.speech_stopped → one final
// transcript), owns each turn's recognition job and raises barge-in. Beside the speaker, run
// by its host (src/listening/listenerHost.ts) in an actor system of its own whose clock is the
// INPUT MEDIA CLOCK: every `after` below counts milliseconds of microphone audio received, not
// wall time, so a client that sends faster or slower than real time gets the same turns.
//
// The host sends one VOICE event per VAD frame at the frame's START on the media clock and
// then advances the clock by the frame's duration: a timer therefore fires only inside audio
// whose voicing the chart already knows (speech of 240 ms never reaches a 250 ms timer; with the
// clock advanced first, it would, during the next, silent frame).
//
// Ownership: `turn` invokes the turn's recognition job (`recognition`, provided by src/) and
// leaving `turn` cancels it, whatever the way out. Completion: each announced turn leaves
// `finalizing` (or the listener, on SHUTDOWN) through exactly one transition that sends its one
// final transcript; every message leaves through the one provided action, `report`.
import { assign, enqueueActions, fromCallback, setup, type AnyActorRef } from 'xstate';
import type { ErrorCode, ListenLimits, ListenerEvent, ListenerReport, RecognitionCommand } from './types.js';
import { errorTable } from './errors.js';

export interface ListenerInput {
  limits: ListenLimits;
  /** The media clock's position in ms (the clock the listener actor runs on). */
  now: () => number;
  /** The session asked for barge-in (`listen.interruptions`, default true). */
  interruptions: boolean;
}

/** What a turn's recognition job is started with. */
export interface RecognitionInput {
  /** Where the speech began on the media clock: the job's audio starts a pre-roll before it. */
  onsetMs: number;
}

export interface ListenerContext {
  limits: ListenLimits;
  now: () => number;
  interruptions: boolean;
  /** The assistant is audible now (the speaker's report, through the connection). */
  audible: boolean;
  /** Turns announced so far: the current one is `t${turns}`. */
  turns: number;
  /** The announced turn's id, '' before its speech_started. */
  turn: string;
  /** Where the current speech began (media ms). */
  onsetMs: number;
  /** Where the current silence began, or null while the user is voiced. */
  silenceFromMs: number | null;
  /** The last partial transcript sent for this turn ('' for none). */
  partial: string;
  /** The recognition job failed during this turn: it ends with this error and an empty final. */
  failure: { code: ErrorCode; message: string } | null;
  /** This turn already raised its barge-in. */
  bargedIn: boolean;
}

type FinalText = 'recognized' | 'empty' | 'so_far';
type ReportAction = { type: 'report'; params: ListenerReport };

const isSpeechFrame = (context: ListenerContext, event: ListenerEvent) =>
  event.type === 'VOICE' &&
  event.speech &&
  // Echo guard: while the assistant is audible, quiet "speech" may be its own voice coming back.
  (!context.audible || event.levelDb >= context.limits.echoGuardLevelDb);

const remaining = (context: ListenerContext, fromOnsetMs: number) => Math.max(0, context.onsetMs + fromOnsetMs - context.now());

const childOf = (self: AnyActorRef, id: string): AnyActorRef | undefined =>
  (self.getSnapshot() as { children: Record<string, AnyActorRef | undefined> }).children[id];

const listenerBase = setup({
  types: {
    context: {} as ListenerContext,
    events: {} as ListenerEvent,
    input: {} as ListenerInput,
  },
  actions: {
    /** Provided by the host: the one way out (messages for the client, BARGE_IN for the connection). */
    report: (_, _report: ListenerReport) => {},
    noteAudible: assign(({ event }) => (event.type === 'ASSISTANT_AUDIBLE' ? { audible: event.audible } : {})),
    /** A new candidate turn: its onset is now (the first speech frame's start). */
    noteOnset: assign(({ context }) => ({
      onsetMs: context.now(),
      silenceFromMs: null,
      turn: '',
      partial: '',
      failure: null,
      bargedIn: false,
    })),
    noteSilence: assign(({ context }) => ({ silenceFromMs: context.now() })),
    noteVoice: assign({ silenceFromMs: null }),
    /** The recognition job failed (reported, or its actor crashed): the turn ends with `code`. */
    noteFailure: assign(({ event }, { code }: { code: 'reported' | ErrorCode }) => {
      if (code === 'reported') {
        return event.type === 'RECOGNITION_ERROR' ? { failure: { code: event.code, message: event.message } } : {};
      }
      return { failure: { code, message: errorTable[code].message } };
    }),
    /** No more audio follows for this turn: the job finishes (sent at once, so it never outlives its actor). */
    finishRecognition: ({ self }) => {
      childOf(self, 'recognition')?.send({ type: 'FINISH' } satisfies RecognitionCommand);
    },
  },
  actors: {
    /** One turn's recognition (src/ wraps SpeechRecognizer.start()); sends RECOGNITION_* back. */
    recognition: fromCallback<RecognitionCommand, RecognitionInput>(() => () => {}),
  },
  guards: {
    isSpeech: ({ context, event }) => isSpeechFrame(context, event),
    isSilence: ({ context, event }) => event.type === 'VOICE' && !isSpeechFrame(context, event),
    /** Speech resumed after a short gap, and the candidate already spans minSpeechMs from its onset. */
    minSpeechReached: ({ context, event }) =>
      isSpeechFrame(context, event) && context.now() - context.onsetMs >= context.limits.minSpeechMs,
    mayBargeIn: ({ context }) => context.interruptions && context.audible && !context.bargedIn,
    partialIsNew: ({ context, event }) => event.type === 'RECOGNITION_PARTIAL' && event.text !== context.partial,
    recognitionFailed: ({ context }) => context.failure !== null,
  },
  delays: {
    minSpeech: ({ context }) => remaining(context, context.limits.minSpeechMs),
    onsetGap: ({ context }) => context.limits.onsetGapMs,
    endpointSilence: ({ context }) => context.limits.endpointSilenceMs,
    maxTurn: ({ context }) => remaining(context, context.limits.maxTurnMs),
    // While the assistant is audible the speech could be its echo: barge-in waits longer.
    interruptDue: ({ context }) =>
      remaining(context, context.limits.interruptSpeechMs + (context.audible ? context.limits.echoGuardExtraMs : 0)),
    recognitionResult: ({ context }) => context.limits.recognitionResultMs,
  },
});

export const listenerSetup = listenerBase.extend({
  actions: {
    /** The candidate is a turn: it gets the next id and its speech_started (at the onset). */
    announceSpeechStarted: listenerBase.enqueueActions(({ context, enqueue }) => {
      const turn = `t${context.turns + 1}`;
      enqueue.assign({ turns: context.turns + 1, turn });
      enqueue({ type: 'report', params: { type: 'input.speech_started', turn, audioMs: Math.round(context.onsetMs) } });
    }),
    /** The user's speech ended where the current silence began, or now if they were voiced. */
    announceSpeechStopped: listenerBase.enqueueActions(({ context, enqueue }) => {
      const at = context.silenceFromMs ?? context.now();
      enqueue({ type: 'report', params: { type: 'input.speech_stopped', turn: context.turn, audioMs: Math.round(at) } });
    }),
    announcePartial: listenerBase.enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'RECOGNITION_PARTIAL') return;
      enqueue.assign({ partial: event.text });
      enqueue({ type: 'report', params: { type: 'transcript', turn: context.turn, text: event.text, final: false } });
    }),
    /** The turn's one final transcript. */
    announceFinal: enqueueActions<ListenerContext, ListenerEvent, { text: FinalText }, ListenerEvent, never, ReportAction, never>(
      ({ context, event, enqueue }, { text }) => {
        const value = text === 'recognized' && event.type === 'RECOGNITION_FINAL' ? event.text : text === 'so_far' ? context.partial : '';
        const report: ListenerReport = { type: 'transcript', turn: context.turn, text: value, final: true };
        enqueue({ type: 'report', params: report });
      },
    ),
    /** The turn's recognition error (before its empty final): as reported, as noted, or `code`. */
    announceError: enqueueActions<ListenerContext, ListenerEvent, { code: 'reported' | 'noted' | ErrorCode }, ListenerEvent, never, ReportAction, never>(
      ({ context, event, enqueue }, { code }) => {
        const error =
          code === 'reported'
            ? event.type === 'RECOGNITION_ERROR'
              ? { code: event.code, message: event.message }
              : null
            : code === 'noted'
              ? context.failure
              : { code, message: errorTable[code].message };
        if (!error) return;
        const report: ListenerReport = { type: 'error', code: error.code, message: error.message };
        enqueue({ type: 'report', params: report });
      },
    ),
    raiseBargeIn: listenerBase.enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ bargedIn: true });
      enqueue({ type: 'report', params: { type: 'BARGE_IN', turn: context.turn } });
    }),
  },
});

/** Leaves the turn for good with its one final transcript (`text`), after its error if any. */
const endTurn = (text: FinalText, error?: 'reported' | 'noted' | ErrorCode) => ({
  target: '#listener.quiet' as const,
  actions: [
    ...(error ? [{ type: 'announceError' as const, params: { code: error } }] : []),
    { type: 'announceFinal' as const, params: { text } },
  ],
});

const toFinalizing = {
  target: '#listener.turn.finalizing' as const,
  actions: ['announceSpeechStopped' as const],
};

export const listenerMachine = listenerSetup.createMachine({
  id: 'listener',
  context: ({ input }) => ({
    limits: input.limits,
    now: input.now,
    interruptions: input.interruptions,
    audible: false,
    turns: 0,
    turn: '',
    onsetMs: 0,
    silenceFromMs: null,
    partial: '',
    failure: null,
    bargedIn: false,
  }),
  initial: 'quiet',
  on: {
    ASSISTANT_AUDIBLE: { actions: 'noteAudible' },
    // Nothing heard yet, or noise that is not a turn: the listener just stops.
    SHUTDOWN: '.closed',
  },
  states: {
    quiet: {
      on: {
        VOICE: { guard: 'isSpeech', target: 'turn', actions: 'noteOnset' },
        // input.commit with no speech heard: there is nothing to end.
      },
    },

    turn: {
      // The turn's recognition lives exactly as long as the turn: from the onset (with the
      // pre-roll before it) to the final transcript, or the candidate dropped as noise.
      invoke: {
        id: 'recognition',
        src: 'recognition',
        input: ({ context }): RecognitionInput => ({ onsetMs: context.onsetMs }),
        onError: { actions: { type: 'noteFailure', params: { code: 'recognizer_failed' } } },
      },
      // Before finalizing, a failed job leaves the turn running (the VAD still ends it); it ends
      // with the error and an empty final.
      on: {
        RECOGNITION_ERROR: { actions: { type: 'noteFailure', params: { code: 'reported' } } },
      },
      initial: 'starting',
      states: {
        // Speech, not yet long enough to be a turn: nothing was sent.
        starting: {
          on: {
            // Push to talk: the user says the speech is over; however short, it is a turn.
            COMMIT: { target: 'finalizing', actions: ['announceSpeechStarted', 'announceSpeechStopped'] },
          },
          initial: 'voiced',
          states: {
            voiced: {
              after: { minSpeech: { target: '#listener.turn.speaking', actions: 'announceSpeechStarted' } },
              on: { VOICE: { guard: 'isSilence', target: 'unvoiced', actions: 'noteSilence' } },
            },
            unvoiced: {
              // Too long a gap before the speech made a turn: noise. Leaving `turn` cancels the job.
              after: { onsetGap: '#listener.quiet' },
              on: {
                VOICE: [
                  { guard: 'minSpeechReached', target: '#listener.turn.speaking', actions: ['noteVoice', 'announceSpeechStarted'] },
                  { guard: 'isSpeech', target: 'voiced', actions: 'noteVoice' },
                ],
              },
            },
          },
        },

        speaking: {
          after: { maxTurn: toFinalizing },
          on: {
            COMMIT: toFinalizing,
            RECOGNITION_PARTIAL: { guard: 'partialIsNew', actions: 'announcePartial' },
            SHUTDOWN: { target: '#listener.closed', actions: ['announceSpeechStopped', { type: 'announceFinal', params: { text: 'so_far' } }] },
          },
          initial: 'voiced',
          states: {
            voiced: {
              // Barge-in: the speech has lasted the threshold since its onset while the assistant is
              // audible (re-armed when it becomes audible); once per turn.
              after: { interruptDue: { guard: 'mayBargeIn', actions: 'raiseBargeIn' } },
              on: {
                VOICE: { guard: 'isSilence', target: 'unvoiced', actions: 'noteSilence' },
                ASSISTANT_AUDIBLE: { target: 'voiced', reenter: true, actions: 'noteAudible' },
              },
            },
            unvoiced: {
              // Endpointing: the speech stopped where this silence began.
              after: { endpointSilence: toFinalizing },
              on: { VOICE: { guard: 'isSpeech', target: 'voiced', actions: 'noteVoice' } },
            },
          },
        },

        // The speech is over; the job was told FINISH and its final is awaited (bounded).
        finalizing: {
          entry: 'finishRecognition',
          always: { guard: 'recognitionFailed', ...endTurn('empty', 'noted') },
          after: { recognitionResult: endTurn('empty', 'recognizer_timeout') },
          on: {
            RECOGNITION_PARTIAL: { guard: 'partialIsNew', actions: 'announcePartial' },
            RECOGNITION_FINAL: endTurn('recognized'),
            RECOGNITION_ERROR: endTurn('empty', 'reported'),
            SHUTDOWN: { target: '#listener.closed', actions: { type: 'announceFinal', params: { text: 'so_far' } } },
          },
        },
      },
    },

    closed: { type: 'final' },
  },
});

export type ListenerMachine = typeof listenerMachine;
