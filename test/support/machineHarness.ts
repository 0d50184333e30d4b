// Runs the pure session machines (the connection and the speaker it invokes) against a scripted upstream and XState's simulated clock,
// recording every frame it would put on the wire. Used by unit and property tests.
import { createActor, fromCallback, SimulatedClock, type StateValueFrom } from 'xstate';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine, type SpeakerMachine } from '../../machines/speaker.machine.js';
import { sessionPhase, speakerOf } from '../../machines/sessionPhase.js';
import { turnMachine, type ReplyInput } from '../../machines/turn.machine.js';
import { createListenerHost, type ListenerHostOptions } from '../../src/listening/listenerHost.js';
import type {
  ConnectionEvent,
  EndRecord,
  ReplyEvent,
  ServerMessage,
  SessionLimits,
  UpstreamEvent,
  UpstreamCommand,
  UpstreamInput,
} from '../../machines/types.js';
import { voiceIdsOf } from '../../src/engine/sessionSettings.js';

export type Frame =
  | { kind: 'message'; message: ServerMessage }
  | { kind: 'audio'; stream: number; seq: number; samples: number; marker: number }
  | { kind: 'close'; code: number };

export interface FakeUpstream {
  input: UpstreamInput;
  commands: UpstreamCommand['type'][];
  sendBack: (event: UpstreamEvent) => void;
  /** A chunk the way the real upstream sends it: through the lane while open, else as UPSTREAM_AUDIO. */
  write: (pcm: Int16Array) => void;
  cleanedUp: boolean;
}

/** A reply actor of the agent turn, scripted by the test. */
export interface FakeReply {
  input: ReplyInput;
  /** Reports as the model would (ignored once the actor was stopped). */
  send: (event: ReplyEvent) => void;
  stopped: boolean;
}

export const testLimits: SessionLimits = {
  handshakeTimeoutMs: 5_000,
  firstAudioTimeoutMs: 1_000,
  chunkGapTimeoutMs: 800,
  utteranceTimeoutMs: 6_000,
  textIdleTimeoutMs: 1_500,
  textQuietMs: 300,
  releaseTimeoutMs: 300,
  writeStallTimeoutMs: 2_000,
  maxTextChars: 200,
  maxQueued: 4,
  idMemory: 64,
  audibleTailMaxMs: 3_000,
};

export function createHarness(
  limits: Partial<SessionLimits> = {},
  extra: {
    listen?: Omit<ListenerHostOptions, 'sendMessage' | 'wallClock'>;
    /** The agent turn: each reply's model gives up after this much simulated time, as withDeadlines does. */
    agent?: { modelDeadlineMs: number };
  } = {},
) {
  const clock = new SimulatedClock();
  const frames: Frame[] = [];
  const ended: EndRecord[] = [];
  const upstreams: FakeUpstream[] = [];
  let liveUpstreams = 0;
  let maxLiveUpstreams = 0;
  /** Ownership violations seen: an upstream started while another was still live. */
  const overlaps: number[] = [];
  let liveWatchers = 0;

  let laneChunks = 0;
  const recordAudio = (stream: number, seq: number, pcm: Int16Array) =>
    frames.push({ kind: 'audio', stream, seq, samples: pcm.length, marker: pcm[0] ?? -1 });

  const speaker = speakerMachine.provide({
    actions: {
      sendMessage: (_, message) => frames.push({ kind: 'message', message }),
      sendAudio: (_, a) => recordAudio(a.stream, a.seq, a.pcm),
      utteranceEnded: (_, record) => ended.push(record),
    },
    actors: {
      upstream: fromCallback<UpstreamCommand, UpstreamInput>(({ input, sendBack, receive }) => {
        if (liveUpstreams > 0) overlaps.push(input.stream);
        liveUpstreams++;
        maxLiveUpstreams = Math.max(maxLiveUpstreams, liveUpstreams);
        const upstream: FakeUpstream = {
          input,
          commands: [],
          sendBack: sendBack as (e: UpstreamEvent) => void,
          write: (pcm) => {
            const seq = input.lane.pass(pcm);
            if (seq < 0) return sendBack({ type: 'UPSTREAM_AUDIO', stream: input.stream, pcm });
            laneChunks++;
            recordAudio(input.stream, seq, pcm);
          },
          cleanedUp: false,
        };
        upstreams.push(upstream);
        receive((cmd) => upstream.commands.push(cmd.type));
        return () => {
          // Cleanup must be harmless when repeated: count it once.
          if (upstream.cleanedUp) return;
          upstream.cleanedUp = true;
          liveUpstreams--;
        };
      }),
      drainWatcher: fromCallback(() => {
        liveWatchers++;
        return () => {
          liveWatchers--;
        };
      }),
    },
  });

  // With `listen`, the real listener host (its ports are the test's), writing to the same frames.
  const listener = extra.listen
    ? createListenerHost({ ...extra.listen, sendMessage: (_, message) => frames.push({ kind: 'message', message }), wallClock: clock })
    : undefined;
  // With `agent`, the real turn chart; its model replies are the test's to script.
  const replies: FakeReply[] = [];
  const agent = extra.agent;
  const turn = turnMachine.provide({
    actions: { sendMessage: (_, message) => frames.push({ kind: 'message', message }) },
    actors: {
      reply: fromCallback<{ type: 'NONE' }, ReplyInput>(({ input, sendBack }) => {
        const reply: FakeReply = { input, stopped: false, send: (event) => !reply.stopped && sendBack(event) };
        replies.push(reply);
        const deadline = agent ? clock.setTimeout(() => reply.send({ type: 'REPLY_ERROR', error: { code: 'model_timeout', message: 'late' } }), agent.modelDeadlineMs) : undefined;
        return () => {
          reply.stopped = true;
          if (deadline !== undefined) clock.clearTimeout(deadline);
        };
      }),
    },
  });
  const machine = connectionMachine.provide({
    actions: {
      sendMessage: (_, message) => frames.push({ kind: 'message', message }),
      closeConnection: (_, c) => frames.push({ kind: 'close', code: c.code }),
    },
    actors: listener ? { speaker, listener, turn } : { speaker, turn },
  });

  const voices = [
    { id: 'en-us', language: 'en', provider: 'fake' },
    { id: 'ar', language: 'ar', provider: 'fake' },
  ];
  const actor = createActor(machine, {
    clock,
    input: {
      sessionId: 'test-session',
      voices,
      voiceIds: voiceIdsOf(voices),
      defaultVoice: 'en-us',
      sampleRates: [24_000, 16_000],
      limits: { ...testLimits, ...limits },
      now: () => clock.now(),
    },
  });
  const errors: unknown[] = [];
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();

  return {
    actor,
    clock,
    frames,
    ended,
    upstreams,
    overlaps,
    errors,
    replies,
    /** The reply whose model request is alive, if any. */
    liveReply: () => replies.find((r) => !r.stopped),
    send: (event: ConnectionEvent) => {
      if (actor.getSnapshot().status === 'active') actor.send(event);
    },
    /** The session's phase as observers see it (`idle` with or without a speaker yet). */
    phase: () => sessionPhase(actor.getSnapshot())?.state,
    /** The running speaker's context (undefined before the handshake and after the end). */
    speakerContext: () => speakerOf(actor.getSnapshot())?.getSnapshot().context,
    /** Whether the connection is open and its speaker is in `state`. */
    speakerIn: (state: StateValueFrom<SpeakerMachine>) => {
      const snapshot = speakerOf(actor.getSnapshot())?.getSnapshot();
      return snapshot?.status === 'active' && snapshot.matches(state);
    },
    /** The upstream the session currently owns, if its actor is still running. */
    liveUpstream: () => upstreams.find((u) => !u.cleanedUp),
    counts: () => ({
      /** Chunks that went through an open lane rather than as events. */
      laneChunks,
      liveUpstreams,
      maxLiveUpstreams,
      liveWatchers,
      pendingTimers: (clock as unknown as { timeouts: Map<unknown, unknown> }).timeouts.size,
    }),
    messages: () => frames.flatMap((f) => (f.kind === 'message' ? [f.message] : [])),
  };
}

export type Harness = ReturnType<typeof createHarness>;
