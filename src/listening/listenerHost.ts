// The listener host: the actor a connection invokes for its hearing region once the session
// was granted listening. For one session it owns the mic gate (shape, decoding, real-time
// budget), the VAD, the input media clock, a small pre-roll ring, and the listener actor
// (machines/listener.machine.ts) run on that clock in an actor system of its own; it provides
// the listener's `recognition` actor, which wraps SpeechRecognizer.start() for one turn.
//
// Per microphone frame (50 a second per session): the gate's PCM is written once into the ring
// and, when a turn's job is live, to the job; then one VOICE event per VAD frame goes to the
// listener at the frame's start, and the clock advances over the frame (timers due inside it
// fire). Nothing else is allocated per frame but the VOICE events.
//
// A VAD that decides later (Silero, AsyncVoiceActivityDetector) gets the same order, later in wall
// time: the audio waits in a bounded backlog (vadBacklog.ts) and goes to the ring, the job and the
// clock one VAD frame at a time as decisions come back; COMMIT and ASSISTANT_AUDIBLE wait behind
// the audio that arrived before them. A frame that would queue past `vadBacklogMs` is refused
// (`audio_overrun`): inference fell behind, and waiting longer would only grow memory.
//
// Messages leave straight to the session's transport (`sendMessage`, as the speaker's do), so
// a final transcript on SHUTDOWN goes out before the connection closes; BARGE_IN goes back to
// the connection, which interrupts the speaker. Cleanup (the connection left `listening` or
// ended) stops the listener actor, which cancels a live job, and closes the VAD and the gate.
// It is idempotent.
import { createActor, fromCallback, type ActorRefFrom, type ActorSystem, type InspectionEvent } from 'xstate';
import type { ListenerHostEvent, ListenerHostInput } from '../../machines/connection.machine.js';
import { listenerMachine, type RecognitionInput } from '../../machines/listener.machine.js';
import { errorTable } from '../../machines/errors.js';
import type {
  ErrorCode,
  ListenFormat,
  ListenLimits,
  ListenerEvent,
  ListenerReport,
  RecognitionCommand,
  RecognitionEvent,
  ServerMessage,
  UserTurnEvent,
  WireError,
} from '../../machines/types.js';
import { MediaClock, type Clock } from './mediaClock.js';
import {
  decidesLater,
  listenSampleRate,
  RecognitionError,
  type AsyncVoiceActivityDetector,
  type RecognitionJob,
  type SpeechRecognizer,
  type VoiceActivityDetector,
  type VoiceFrame,
} from './types.js';
import { VadBacklog } from './vadBacklog.js';

/** What the host tells its connection. */
type ListenerHostReport = { type: 'BARGE_IN' } | UserTurnEvent;

/** A refused microphone frame: the client gets this error and the session goes on. */
export interface MicRefusal {
  code: ErrorCode;
  message: string;
}

/**
 * The per-session mic gate: checks each binary frame (10-250 ms of the listen format, even
 * length for PCM), decodes it (Opus) and keeps the real-time budget. `accept` returns 16 kHz
 * mono PCM the caller may keep (a fresh array, or a view nobody else writes), or a refusal
 * (`bad_audio`, `audio_overrun`). `close()` frees it and is idempotent.
 */
export interface MicInput {
  accept(payload: Uint8Array): Int16Array | MicRefusal;
  close(): void;
}

/** Counts for metrics and leak checks; every hook is optional. */
export interface ListenerHostHooks {
  listenerStarted?(): void;
  listenerStopped?(): void;
  jobStarted?(): void;
  jobEnded?(): void;
  turnStarted?(): void;
  bargeIn?(): void;
  recognizerError?(code: ErrorCode): void;
  /** Milliseconds of microphone audio accepted. */
  audio?(ms: number): void;
  /** Audio waiting for an asynchronous VAD's decisions grew (+) or shrank (-) by this many ms. */
  vadBacklog?(deltaMs: number): void;
}

export interface ListenerHostOptions {
  /** The recognizers by name (the grant names the session's). */
  recognizers: ReadonlyMap<string, SpeechRecognizer>;
  createVad: () => VoiceActivityDetector;
  createMicInput: (format: ListenFormat) => MicInput;
  limits: ListenLimits;
  /** Writes to the session's transport (a no-op once it closed). */
  sendMessage: (sessionId: string, message: ServerMessage) => void;
  /** Wall clock for the recognition deadline (tests pass a simulated one). */
  wallClock?: Clock;
  hooks?: ListenerHostHooks;
  /** XState inspection of each session's listener actor. */
  inspect?: (sessionId: string) => ((event: InspectionEvent) => void) | undefined;
  /** Most audio that may wait for an asynchronous VAD's decisions per session (default 3000 ms). */
  vadBacklogMs?: number;
}

/** Above the mic gate's 2 s burst: a client catching up after a stall is not refused for it. */
export const defaultVadBacklogMs = 3000;

type LaterEvent = Extract<ListenerHostEvent, { type: 'COMMIT' | 'ASSISTANT_AUDIBLE' }>;

const realClock: Clock = {
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
  clearTimeout: (id: unknown) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

const samplesPerMs = listenSampleRate / 1000;
/** The longest microphone frame the gate passes, plus a VAD frame of lag: what the ring holds beyond the pre-roll. */
const ringSlackMs = 300;

/** The last few hundred ms of input PCM, addressed by absolute sample position. */
export class PcmRing {
  private readonly buffer: Int16Array;
  /** Samples written since the session started. */
  total = 0;

  constructor(capacity: number) {
    this.buffer = new Int16Array(Math.max(1, capacity));
  }

  write(pcm: Int16Array): void {
    const cap = this.buffer.length;
    const src = pcm.length > cap ? pcm.subarray(pcm.length - cap) : pcm;
    const at = (this.total + (pcm.length - src.length)) % cap;
    const first = Math.min(src.length, cap - at);
    this.buffer.set(src.subarray(0, first), at);
    if (first < src.length) this.buffer.set(src.subarray(first), 0);
    this.total += pcm.length;
  }

  /** A copy of what is still held from absolute sample `from` to the end. */
  copyFrom(from: number): Int16Array {
    const cap = this.buffer.length;
    const start = Math.max(from, this.total - cap, 0);
    const out = new Int16Array(Math.max(0, this.total - start));
    const at = start % cap;
    const first = Math.min(out.length, cap - at);
    out.set(this.buffer.subarray(at, at + first), 0);
    if (first < out.length) out.set(this.buffer.subarray(0, out.length - first), first);
    return out;
  }
}

interface LiveJob {
  job: RecognitionJob | null;
  /** FINISH came: no more audio is written to it. */
  finished: boolean;
}

type SendBack = (event: RecognitionEvent) => void;

function recognitionErrorOf(error: unknown): RecognitionEvent {
  if (error instanceof RecognitionError) return { type: 'RECOGNITION_ERROR', code: error.code, message: error.message };
  // An untyped failure: its text may be internal, the client gets the table's message.
  return { type: 'RECOGNITION_ERROR', code: 'recognizer_failed', message: errorTable.recognizer_failed.message };
}

/** Every live session's listening state, found by its listener's actor system. */
const sessions = new WeakMap<ActorSystem<any>, ListeningSession>();

/** The listener chart with its report and recognition provided once per host factory. */
function providedListener() {
  return listenerMachine.provide({
    actions: {
      report: ({ system }, report) => sessions.get(system)?.report(report),
    },
    actors: {
      recognition: fromCallback<RecognitionCommand, RecognitionInput>(({ input, system, sendBack, receive }) => {
        const session = sessions.get(system);
        if (!session) return () => {};
        return session.startJob(input.onsetMs, sendBack as SendBack, receive);
      }),
    },
  });
}

type ProvidedListener = ReturnType<typeof providedListener>;

class ListeningSession {
  private readonly clock = new MediaClock();
  private readonly ring: PcmRing;
  private readonly gate: MicInput;
  private readonly vad: VoiceActivityDetector;
  private readonly recognizer: SpeechRecognizer;
  private readonly listener: ActorRefFrom<ProvidedListener>;
  private readonly wallClock: Clock;
  /** Only for a VAD that decides later: the audio and events waiting for its decisions. */
  private readonly backlog: VadBacklog<LaterEvent> | null;
  private readonly maxBacklogSamples: number;
  /** The wait for the VAD's pending decisions, while one runs. */
  private inference: Promise<void> | null = null;
  /**
   * What the listener tells the connection while late decisions are replayed: sent after the
   * listener's step, not from inside its `report` action (the connection is idle then and would
   * run its whole step nested in the listener's action). Null outside such a step.
   */
  private heldForConnection: ListenerHostReport[] | null = null;
  private job: LiveJob | null = null;
  private released = false;
  /** The recognition error of the turn being finalized, sent with its final. */
  private turnError: WireError | null = null;

  constructor(
    private readonly input: ListenerHostInput,
    private readonly options: ListenerHostOptions,
    machine: ProvidedListener,
    private readonly sendBack: (event: ListenerHostReport) => void,
  ) {
    const recognizer = options.recognizers.get(input.grant.recognizer);
    if (!recognizer) throw new Error(`no recognizer named ${input.grant.recognizer}`);
    this.recognizer = recognizer;
    this.wallClock = options.wallClock ?? realClock;
    this.ring = new PcmRing((options.limits.preRollMs + ringSlackMs) * samplesPerMs);
    this.gate = options.createMicInput(input.grant.format);
    try {
      this.vad = options.createVad();
    } catch (error) {
      this.gate.close();
      throw error;
    }
    this.backlog = decidesLater(this.vad) ? new VadBacklog((this.vad.frameMs * samplesPerMs) | 0) : null;
    this.maxBacklogSamples = (options.vadBacklogMs ?? defaultVadBacklogMs) * samplesPerMs;
    const inspect = options.inspect?.(input.sessionId);
    this.listener = createActor(machine, {
      clock: this.clock,
      input: { limits: options.limits, now: () => this.clock.now(), interruptions: input.grant.interruptions },
      ...(inspect ? { inspect } : {}),
    });
    sessions.set(this.listener.system, this);
    this.listener.subscribe({ error: () => this.fail() });
    options.hooks?.listenerStarted?.();
    this.listener.start();
  }

  handle(event: ListenerHostEvent): void {
    if (this.released) return;
    switch (event.type) {
      case 'MIC_AUDIO':
        this.onAudio(event.payload);
        return;
      case 'COMMIT':
      case 'ASSISTANT_AUDIBLE':
        // Behind the audio that came before it, when that audio still waits for its decisions.
        if (!this.backlog || this.backlog.queueOrPass(event)) this.toListener(event);
        return;
      case 'SHUTDOWN':
        // A turn in progress gets its final transcript now (sent before the connection closes).
        this.toListener(event);
        this.release();
        return;
    }
  }

  private onAudio(payload: Uint8Array): void {
    const pcm = this.gate.accept(payload);
    if (!(pcm instanceof Int16Array)) {
      this.send({ type: 'error', code: pcm.code, message: pcm.message });
      return;
    }
    if (this.backlog) {
      this.onLaterAudio(this.backlog, pcm);
      return;
    }
    this.options.hooks?.audio?.(pcm.length / samplesPerMs);
    this.hear(pcm);
    const frames = this.vad.push(pcm);
    for (let i = 0; i < frames.length; i++) {
      this.voice(frames[i]!);
      if (this.released) return;
    }
  }

  /** Audio the listener is about to classify: into the ring, and to the turn's job if one lives. */
  private hear(pcm: Int16Array): void {
    this.ring.write(pcm);
    // A job that lives since an earlier frame takes this one whole (a job started by its VOICE gets it from the ring).
    const live = this.job;
    if (live && !live.finished) this.feed(live, pcm);
  }

  /** One VAD frame to the listener at its start; then the clock crosses it and fires what falls due inside it. */
  private voice(frame: VoiceFrame): void {
    this.holdingReports(() => {
      this.listener.send({ type: 'VOICE', speech: frame.speech, levelDb: frame.levelDb, durationMs: frame.durationMs } satisfies ListenerEvent);
      this.clock.advance(frame.durationMs);
    });
  }

  /** An event to the listener; what it reports for the connection goes after its step. */
  private toListener(event: ListenerEvent): void {
    this.holdingReports(() => this.listener.send(event));
  }

  /**
   * Runs `step` (events to the listener, its timers) and only then tells the connection what
   * the listener reported for it: the connection's own step (routing to the speaker and the
   * turn) must not run nested inside the listener's report action.
   */
  private holdingReports(step: () => void): void {
    if (this.heldForConnection) {
      step();
      return;
    }
    const held: ListenerHostReport[] = [];
    this.heldForConnection = held;
    try {
      step();
    } finally {
      this.heldForConnection = null;
      for (const report of held) if (!this.released) this.sendBack(report);
    }
  }

  /** A VAD that decides later: the audio waits (bounded) for its decisions. */
  private onLaterAudio(backlog: VadBacklog<LaterEvent>, pcm: Int16Array): void {
    if (backlog.samples + pcm.length > this.maxBacklogSamples) {
      const waitingMs = Math.round(backlog.samples / samplesPerMs);
      this.send({ type: 'error', code: 'audio_overrun', message: `speech detection is ${waitingMs} ms of audio behind; ${pcm.length / samplesPerMs} ms frame dropped` });
      return;
    }
    this.options.hooks?.audio?.(pcm.length / samplesPerMs);
    backlog.push(pcm);
    this.options.hooks?.vadBacklog?.(pcm.length / samplesPerMs);
    let frames: VoiceFrame[];
    try {
      frames = this.vad.push(pcm);
    } catch {
      this.fail(); // inference broke: its audio would never be decided
      return;
    }
    // Decisions that finished since the last frame come back here; the rest through drain().
    this.decided(backlog, frames);
    this.awaitDecisions(backlog);
  }

  /** Decisions came back: each frame's audio, its VOICE, then the events that waited for it. */
  private decided(backlog: VadBacklog<LaterEvent>, frames: VoiceFrame[]): void {
    for (let i = 0; i < frames.length && !this.released; i++) {
      const frame = frames[i]!;
      const pcm = backlog.take(Math.round(frame.durationMs * samplesPerMs));
      this.options.hooks?.vadBacklog?.(-pcm.length / samplesPerMs);
      this.hear(pcm);
      this.voice(frame);
      for (const event of backlog.due()) if (!this.released) this.toListener(event);
    }
  }

  /** Wait for the decisions of the frames pushed so far, unless a wait runs already. */
  private awaitDecisions(backlog: VadBacklog<LaterEvent>): void {
    if (this.inference || this.released || backlog.samples < this.vad.frameMs * samplesPerMs) return;
    this.inference = (this.vad as AsyncVoiceActivityDetector).drain().then(
      (frames) => {
        this.inference = null;
        if (this.released) return; // closed meanwhile: nobody to tell
        try {
          this.decided(backlog, frames);
          this.awaitDecisions(backlog);
        } catch {
          this.send({ type: 'error', code: 'internal', message: 'could not process microphone audio' });
        }
      },
      () => {
        this.inference = null;
        this.fail();
      },
    );
  }

  /**
   * The listener's report: messages to the client; barge-in, and each user turn's start and final
   * (for the agent turn), to the connection. A recognition error precedes its turn's empty final
   * and travels with it.
   */
  report(report: ListenerReport): void {
    if (this.released) return;
    const hooks = this.options.hooks;
    switch (report.type) {
      case 'BARGE_IN':
        hooks?.bargeIn?.();
        this.tellConnection({ type: 'BARGE_IN' });
        return;
      case 'input.speech_started':
        hooks?.turnStarted?.();
        this.send(report);
        this.tellConnection({ type: 'USER_TURN_STARTED', turn: report.turn });
        return;
      case 'error':
        hooks?.recognizerError?.(report.code);
        this.turnError = { code: report.code, message: report.message };
        break;
      case 'transcript':
        if (report.final) {
          // The client reads the final before anything the agent says about it.
          this.send(report);
          const error = this.turnError;
          this.turnError = null;
          this.tellConnection({ type: 'USER_TURN_HEARD', turn: report.turn, text: report.text, ...(error ? { error } : {}) });
          return;
        }
        break;
    }
    this.send(report);
  }

  private tellConnection(report: ListenerHostReport): void {
    if (this.heldForConnection) this.heldForConnection.push(report);
    else this.sendBack(report);
  }

  /** One turn's recognition: the `recognition` actor's body. Returns its cleanup. */
  startJob(onsetMs: number, toJobOwner: SendBack, receive: (listener: (command: RecognitionCommand) => void) => void): () => void {
    // The job's results reach the listener outside any step of it: hold what it reports for the connection.
    const sendBack: SendBack = (event) => this.holdingReports(() => toJobOwner(event));
    const controller = new AbortController();
    const live: LiveJob = { job: null, finished: false };
    let deadline: unknown;
    let over = false;
    this.options.hooks?.jobStarted?.();
    const fail = (error: unknown) => {
      if (over) return;
      over = true;
      sendBack(recognitionErrorOf(error));
    };
    try {
      live.job = this.recognizer.start({
        language: this.input.grant.language,
        ...(this.input.grant.phrases ? { phrases: this.input.grant.phrases } : {}),
        signal: controller.signal,
        onPartial: (text) => {
          if (!controller.signal.aborted && !over) sendBack({ type: 'RECOGNITION_PARTIAL', text });
        },
      });
      // The pre-roll: audio from before the onset (VAD onsets come late), up to what arrived.
      const preRoll = this.ring.copyFrom(Math.round(onsetMs * samplesPerMs) - this.options.limits.preRollMs * samplesPerMs);
      if (preRoll.length > 0) live.job.write(preRoll);
      this.job = live;
    } catch (error) {
      live.job = null;
      fail(error);
    }
    receive((command) => {
      if (command.type !== 'FINISH' || live.finished) return;
      live.finished = true;
      const job = live.job;
      if (!job || over) return;
      // A client may stop sending audio: the media clock would stand still, the wall clock does not.
      deadline = this.wallClock.setTimeout(() => fail(new RecognitionError('recognizer_timeout', errorTable.recognizer_timeout.message)), this.options.limits.recognitionWallMs);
      let finishing: Promise<string>;
      try {
        finishing = job.finish();
      } catch (error) {
        fail(error);
        return;
      }
      finishing.then(
        (text) => {
          if (controller.signal.aborted || over) return;
          over = true;
          sendBack({ type: 'RECOGNITION_FINAL', text });
        },
        (error: unknown) => {
          if (!controller.signal.aborted) fail(error);
        },
      );
    });
    return () => {
      controller.abort();
      if (deadline !== undefined) this.wallClock.clearTimeout(deadline);
      if (this.job === live) this.job = null;
      try {
        live.job?.cancel();
      } catch {
        /* cancel is idempotent and must not throw; if it does, the job is gone anyway */
      }
      live.job = null;
      this.options.hooks?.jobEnded?.();
    };
  }

  private feed(live: LiveJob, pcm: Int16Array): void {
    try {
      live.job?.write(pcm);
    } catch (error) {
      // The job broke: no more audio; the listener hears of it through the error.
      const job = live.job;
      live.job = null;
      try {
        job?.cancel();
      } catch {
        /* gone */
      }
      this.failJob(error);
    }
  }

  private failJob(error: unknown): void {
    if (this.released) return;
    this.toListener(recognitionErrorOf(error));
  }

  private send(message: ServerMessage): void {
    this.options.sendMessage(this.input.sessionId, message);
  }

  /** The listener actor failed (should never happen): the session goes on speaking only. */
  private fail(): void {
    if (this.released) return;
    this.send({ type: 'error', code: 'internal', message: 'listening failed; the session goes on speaking only' });
    this.release();
  }

  /** Everything this session's listening holds, released once. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.listener.stop(); // stops the recognition actor: its cleanup cancels the job
    this.clock.clear();
    this.job = null;
    if (this.backlog) {
      // Pending inference is the VAD's to drop (close); its late answer finds this session released.
      this.options.hooks?.vadBacklog?.(-this.backlog.samples / samplesPerMs);
      this.backlog.clear();
    }
    for (const close of [() => this.vad.close(), () => this.gate.close()]) {
      try {
        close();
      } catch {
        /* idempotent closes; one failing must not keep the other open */
      }
    }
    sessions.delete(this.listener.system);
    this.options.hooks?.listenerStopped?.();
  }
}

/** The connection's `listener` actor for this engine: one ListeningSession per granted session. */
export function createListenerHost(options: ListenerHostOptions) {
  const machine = providedListener();
  return fromCallback<ListenerHostEvent, ListenerHostInput>(({ input, sendBack, receive }) => {
    const session = new ListeningSession(input, options, machine, sendBack as (event: ListenerHostReport) => void);
    receive((event) => {
      // A throw here would kill the callback without its cleanup (XState #5433): never let one out.
      try {
        session.handle(event);
      } catch {
        options.sendMessage(input.sessionId, { type: 'error', code: 'internal', message: 'could not process microphone audio' });
      }
    });
    return () => session.release();
  });
}
