// Runs the pure session machines (the connection and the speaker it invokes) against a scripted upstream and XState's simulated clock,
// recording every frame it would put on the wire. Used by unit and property tests.
import { createActor, fromCallback, SimulatedClock, type StateValueFrom } from 'xstate';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine, type SpeakerMachine } from '../../machines/speaker.machine.js';
import { sessionPhase, speakerOf } from '../../machines/sessionPhase.js';
import { createListenerHost, type ListenerHostOptions } from '../../src/listening/listenerHost.js';
import type {
  ConnectionEvent,
  EndRecord,
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

export function createHarness(limits: Partial<SessionLimits> = {}, extra: { listen?: Omit<ListenerHostOptions, 'sendMessage' | 'wallClock'> } = {}) {
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
  const machine = connectionMachine.provide({
    actions: {
      sendMessage: (_, message) => frames.push({ kind: 'message', message }),
      closeConnection: (_, c) => frames.push({ kind: 'close', code: c.code }),
    },
    actors: listener ? { speaker, listener } : { speaker },
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
