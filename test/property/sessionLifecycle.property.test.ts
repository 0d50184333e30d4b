// Property: whatever interleaving of client frames, upstream behaviour, disconnects and
// timer expiry happens, the session keeps the three laws.
//
// Invariants checked on every run:
//  I1 every accepted utterance ends exactly once (internally and on the wire), with a
//     valid reason; `error` is present exactly for failed and timeout;
//  I2 no audio frame of a stream after its speak.end; audio seq runs 0,1,2… per stream;
//  I3 at most one upstream is alive at any time (a new owner starts after the old let go);
//  I4 a STOP's output is only speak.end frames (reason stopped) for what it ended, and after
//     a STOP without id nothing accepted before it is left un-ended;
//  I5 after `ended`: zero live upstreams, drain watchers and pending timers;
//     the actor never errors.
// Replay a failure with FC_SEED=<seed> FC_PATH=<path> printed by fast-check.
import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import type { EndReason, ServerMessage } from '../../machines/types.js';
import { createHarness, type Harness } from '../support/machineHarness.js';

type Command =
  | { t: 'speak'; id: number; mode: 'interrupt' | 'enqueue'; final: boolean; text: string; voice?: string }
  | { t: 'stop'; id?: number }
  | { t: 'disconnect' }
  | { t: 'shutdown' }
  | { t: 'chunk'; samples: number }
  | { t: 'waiting' }
  | { t: 'finish' }
  | { t: 'finishReleased' }
  | { t: 'error'; reason: 'failed' | 'timeout' }
  | { t: 'released' }
  | { t: 'stale' }
  | { t: 'tick'; ms: number }
  | { t: 'backpressure' }
  | { t: 'drained' };

const idArb = fc.integer({ min: 0, max: 6 });
const textArb = fc.constantFrom('', 'Hi.', 'Hello there. How are', ' you? Fine.', 'x'.repeat(120), 'مرحبا بكم.');

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 50,
    arbitrary: fc.record(
      {
        t: fc.constant('speak' as const),
        id: idArb,
        mode: fc.constantFrom('interrupt' as const, 'enqueue' as const),
        final: fc.boolean(),
        text: textArb,
        voice: fc.constantFrom('en-us', 'ar', 'nope'),
      },
      { requiredKeys: ['t', 'id', 'mode', 'final', 'text'] },
    ),
  },
  { weight: 20, arbitrary: fc.record({ t: fc.constant('stop' as const), id: idArb }, { requiredKeys: ['t'] }) },
  { weight: 60, arbitrary: fc.record({ t: fc.constant('chunk' as const), samples: fc.integer({ min: 1, max: 2400 }) }) },
  { weight: 10, arbitrary: fc.constant({ t: 'waiting' as const }) },
  { weight: 20, arbitrary: fc.constant({ t: 'finish' as const }) },
  // Done after the upstream already let go (the real synthesis actor's completed end).
  { weight: 10, arbitrary: fc.constant({ t: 'finishReleased' as const }) },
  { weight: 10, arbitrary: fc.record({ t: fc.constant('error' as const), reason: fc.constantFrom('failed' as const, 'timeout' as const) }) },
  { weight: 30, arbitrary: fc.constant({ t: 'released' as const }) },
  { weight: 10, arbitrary: fc.constant({ t: 'stale' as const }) },
  { weight: 30, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 2_500 }) }) },
  { weight: 10, arbitrary: fc.constant({ t: 'backpressure' as const }) },
  { weight: 10, arbitrary: fc.constant({ t: 'drained' as const }) },
  { weight: 3, arbitrary: fc.constant({ t: 'disconnect' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'shutdown' as const }) },
);

let laneChunks = 0;
const validReasons = new Set<EndReason>(['completed', 'stopped', 'superseded', 'failed', 'timeout']);

function apply(h: Harness, cmd: Command): void {
  const up = h.liveUpstream();
  switch (cmd.t) {
    case 'speak':
      h.send({
        type: 'SPEAK',
        request: {
          id: `u${cmd.id}`,
          text: cmd.text,
          final: cmd.final,
          mode: cmd.mode,
          ...(cmd.voice !== undefined ? { voice: cmd.voice } : {}),
        },
      });
      return;
    case 'stop':
      h.send(cmd.id === undefined ? { type: 'STOP' } : { type: 'STOP', id: `u${cmd.id}` });
      return;
    case 'disconnect':
      h.send({ type: 'CLIENT_GONE' });
      return;
    case 'shutdown':
      h.send({ type: 'SHUTDOWN' });
      return;
    case 'chunk':
      // Each fake sample carries its stream id, so audio sent under the wrong stream is caught.
      up?.write(new Int16Array(cmd.samples).fill(up.input.stream));
      return;
    case 'waiting':
      up?.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: up.input.stream });
      return;
    case 'finish':
      up?.sendBack({ type: 'UPSTREAM_DONE', stream: up.input.stream });
      return;
    case 'finishReleased':
      // A real upstream says it only when nothing cancelled it.
      if (up && !up.commands.includes('CANCEL')) up.sendBack({ type: 'UPSTREAM_DONE', stream: up.input.stream, released: true });
      return;
    case 'error':
      up?.sendBack({
        type: 'UPSTREAM_ERROR',
        stream: up.input.stream,
        reason: cmd.reason,
        error: { code: 'provider_unavailable', message: 'injected' },
      });
      return;
    case 'released':
      // A real upstream acknowledges only a CANCEL it received.
      if (up?.commands.includes('CANCEL')) up.sendBack({ type: 'UPSTREAM_RELEASED', stream: up.input.stream });
      return;
    case 'stale': {
      // Events tagged with an older stream must be ignored, and an older upstream's lane stays closed.
      const old = h.upstreams.find((u) => u.cleanedUp);
      if (old && up) {
        up.sendBack({ type: 'UPSTREAM_AUDIO', stream: old.input.stream, pcm: new Int16Array(10).fill(old.input.stream) });
        old.write(new Int16Array(10).fill(old.input.stream));
        up.sendBack({ type: 'UPSTREAM_DONE', stream: old.input.stream });
      }
      return;
    }
    case 'tick':
      h.clock.increment(cmd.ms);
      return;
    case 'backpressure':
      h.send({ type: 'CLIENT_BACKPRESSURE' });
      return;
    case 'drained':
      h.send({ type: 'CLIENT_DRAINED' });
      return;
  }
}

function acceptedStreams(messages: ServerMessage[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of messages) if (m.type === 'speak.accepted') out.set(m.stream, m.id);
  return out;
}

function endedStreams(messages: ServerMessage[]): Set<number> {
  const out = new Set<number>();
  for (const m of messages) if (m.type === 'speak.end') out.add(m.stream);
  return out;
}

test.prop([fc.array(commandArb, { minLength: 1, maxLength: 60 })])(
  'session lifecycle keeps ownership, cleanup and completion under any interleaving',
  (commands) => {
    const h = createHarness();
    h.send({ type: 'START', sampleRate: 24_000 });

    for (const cmd of commands) {
      const before = h.frames.length;
      const acceptedBefore = acceptedStreams(h.messages());
      const endedBefore = endedStreams(h.messages());
      apply(h, cmd);
      if (cmd.t === 'stop') {
        // I4: a STOP's output is only `stopped` ends, and they come before any other frame.
        for (const f of h.frames.slice(before)) {
          expect(f.kind).toBe('message');
          if (f.kind === 'message') {
            expect(f.message.type).toBe('speak.end');
            if (f.message.type === 'speak.end') expect(f.message.reason).toBe('stopped');
          }
        }
        if (cmd.id === undefined) {
          const endedNow = endedStreams(h.messages());
          for (const stream of acceptedBefore.keys()) expect(endedNow.has(stream)).toBe(true);
        } else {
          const target = [...acceptedBefore].find(([, id]) => id === `u${cmd.id}`);
          if (target && !endedBefore.has(target[0])) {
            // The latest utterance with that id is ended now (it may have been playing or queued).
            const latest = [...acceptedBefore].filter(([, id]) => id === `u${cmd.id}`).pop()!;
            expect(endedStreams(h.messages()).has(latest[0])).toBe(true);
          }
        }
      }
      // I3: never two upstreams at once.
      expect(h.counts().maxLiveUpstreams).toBeLessThanOrEqual(1);
    }

    // Every session ends: the client goes away at the latest here.
    h.send({ type: 'CLIENT_GONE' });
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.errors).toEqual([]);

    const messages = h.messages();
    const accepted = acceptedStreams(messages);

    // I1: exactly one end per accepted utterance, internally and on the wire.
    for (const stream of accepted.keys()) {
      expect(h.ended.filter((r) => r.stream === stream)).toHaveLength(1);
      expect(messages.filter((m) => m.type === 'speak.end' && m.stream === stream)).toHaveLength(1);
    }
    expect(h.ended).toHaveLength(accepted.size);
    for (const m of messages) {
      if (m.type !== 'speak.end') continue;
      expect(validReasons.has(m.reason)).toBe(true);
      expect(m.error !== undefined).toBe(m.reason === 'failed' || m.reason === 'timeout');
      expect(accepted.get(m.stream)).toBe(m.id);
    }
    const streams = [...accepted.keys()];
    expect(streams).toEqual([...streams].sort((a, b) => a - b));

    // I2: no audio after the end of its stream; sequence numbers without gaps.
    const endIndex = new Map<number, number>();
    const nextSeq = new Map<number, number>();
    h.frames.forEach((f, i) => {
      if (f.kind === 'message' && f.message.type === 'speak.end') endIndex.set(f.message.stream, i);
      if (f.kind === 'audio') {
        expect(endIndex.has(f.stream)).toBe(false);
        expect(accepted.has(f.stream)).toBe(true);
        expect(f.marker).toBe(f.stream);
        expect(f.seq).toBe(nextSeq.get(f.stream) ?? 0);
        nextSeq.set(f.stream, f.seq + 1);
      }
    });

    // I3 and I5: ownership held, and nothing is left behind.
    expect(h.overlaps).toEqual([]);
    expect(h.counts()).toMatchObject({ liveUpstreams: 0, liveWatchers: 0, pendingTimers: 0 });
    laneChunks += h.counts().laneChunks;
  },
);

// I2 above holds for chunks through the audio lane too; this checks the runs really took it.
test('the interleavings above sent chunks through the audio lane as well as as events', () => {
  expect(laneChunks).toBeGreaterThan(0);
});

test.prop([fc.array(commandArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 20_000 })])(
  'a session left alone ends every utterance by itself through its timers',
  (commands, idleMs) => {
    const h = createHarness();
    h.send({ type: 'START', sampleRate: 24_000 });
    for (const cmd of commands) if (cmd.t !== 'disconnect' && cmd.t !== 'shutdown') apply(h, cmd);
    // No more input from anyone: the upstream may hang forever. Time alone must end everything.
    // SimulatedClock jumps `now` before firing, so advance in steps: timers that a firing
    // timer schedules must fire within this idle period too.
    for (let t = 0; t < idleMs + 60_000; t += 50) h.clock.increment(50);
    const messages = h.messages();
    const accepted = acceptedStreams(messages);
    const ended = endedStreams(messages);
    // Backpressure that never drains ends the session itself (client_stalled); otherwise it goes idle.
    for (const stream of accepted.keys()) expect(ended.has(stream)).toBe(true);
    expect(h.counts().liveUpstreams).toBe(0);
    expect(h.counts().liveWatchers).toBe(0);
    const state = h.actor.getSnapshot();
    expect(state.status === 'done' || h.phase() === 'idle').toBe(true);
  },
);
