// Property: whatever interleaving of user speech (turns starting, finals with words, empty or
// failed), barge-in, model text, model errors and hangs, synthesized audio (with its text pieces),
// upstream faults, playback reports, STOP, disconnects, shutdown and timers happens, the agent
// turn keeps its laws. The pure charts (connection, speaker, turn) run on XState's SimulatedClock;
// the test plays the listener host (user turns, barge-in), the model (scripted reply actors that
// give up after a deadline, as withDeadlines does) and the upstream.
//
//  A1 every started user turn gets at most one turn.end; exactly one unless the client went away;
//     on shutdown every turn.end leaves before the close;
//  A2 a reply's turn.end follows its utterance's speak.end, and no audio of the reply follows that;
//  A3 heard is a prefix of the reply's written text (whole words); all of it when completed;
//     empty when none of the reply's audio went out; never more non-space characters than the
//     pieces whose audio went out;
//  A4 a superseded (or empty, or failed before any text) turn's reply never reached the speaker:
//     no speak.accepted for it;
//  A5 after the session ends: no model request, upstream, drain watcher or timer is left, and no
//     actor errored.
// FC_NUM_RUNS sets the number of runs; a failure prints its seed and path (FC_SEED, FC_PATH replay it).
import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { nonSpaceChars } from '../../machines/heardText.js';
import type { ListenGrant, ServerMessage } from '../../machines/types.js';
import { createHarness, type Harness } from '../support/machineHarness.js';

type Command =
  | { t: 'userStarts' }
  | { t: 'userHeard'; text: '' | 'words'; failed: boolean }
  | { t: 'bargeIn' }
  | { t: 'delta'; text: string }
  | { t: 'modelDone' }
  | { t: 'modelError' }
  | { t: 'piece'; chars: number }
  | { t: 'pieceEnd' }
  | { t: 'chunk' }
  | { t: 'upstreamDone' }
  | { t: 'upstreamFails' }
  | { t: 'released' }
  | { t: 'playback'; playedMs: number }
  | { t: 'stop' }
  | { t: 'tick'; ms: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ t: 'userStarts' as const }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('userHeard' as const), text: fc.constantFrom('' as const, 'words' as const, 'words' as const), failed: fc.constantFrom(false, false, false, true) }) },
  { weight: 3, arbitrary: fc.constant({ t: 'bargeIn' as const }) },
  { weight: 14, arbitrary: fc.record({ t: fc.constant('delta' as const), text: fc.constantFrom('Hello ', 'there. ', 'How are ', 'you today? ', 'Fine.') }) },
  { weight: 5, arbitrary: fc.constant({ t: 'modelDone' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'modelError' as const }) },
  { weight: 5, arbitrary: fc.record({ t: fc.constant('piece' as const), chars: fc.integer({ min: 1, max: 30 }) }) },
  { weight: 3, arbitrary: fc.constant({ t: 'pieceEnd' as const }) },
  { weight: 16, arbitrary: fc.constant({ t: 'chunk' as const }) },
  { weight: 4, arbitrary: fc.constant({ t: 'upstreamDone' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'upstreamFails' as const }) },
  { weight: 5, arbitrary: fc.constant({ t: 'released' as const }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('playback' as const), playedMs: fc.integer({ min: 0, max: 3_000 }) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'stop' as const }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 8_000 }) }) },
);

const grant: ListenGrant = { granted: true, format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', interruptions: true, recognizer: 'scripted' };
/** What the runs exercised (checked below, so the properties are not vacuous). */
const seen = { turns: 0, statuses: new Map<string, number>(), heardSome: 0 };

interface RunState {
  nextTurn: number;
  /** The user turn being heard (started, no final yet). */
  open: string | null;
  /** Non-space characters of the pieces that got audio, per stream. */
  pieceChars: Map<number, number>;
  /** The piece marked last on each stream got audio already. */
  pieceHasAudio: Map<number, boolean>;
  pendingPiece: Map<number, number>;
}

function apply(h: Harness, cmd: Command, s: RunState): void {
  const up = h.liveUpstream();
  switch (cmd.t) {
    case 'userStarts':
      if (s.open) return; // the listener hears one turn at a time
      s.open = `t${++s.nextTurn}`;
      h.send({ type: 'USER_TURN_STARTED', turn: s.open });
      return;
    case 'userHeard': {
      if (!s.open) return;
      const turn = s.open;
      s.open = null;
      const text = cmd.failed ? '' : cmd.text === 'words' ? 'what time is it' : '';
      h.send({ type: 'USER_TURN_HEARD', turn, text, ...(cmd.failed ? { error: { code: 'recognizer_failed', message: 'x' } } : {}) });
      return;
    }
    case 'bargeIn':
      if (s.open) h.send({ type: 'BARGE_IN' });
      return;
    case 'delta':
      h.liveReply()?.send({ type: 'REPLY_DELTA', text: cmd.text });
      return;
    case 'modelDone':
      h.liveReply()?.send({ type: 'REPLY_DONE' });
      return;
    case 'modelError':
      h.liveReply()?.send({ type: 'REPLY_ERROR', error: { code: 'model_failed', message: 'x' } });
      return;
    case 'piece':
      if (!up) return;
      up.input.lane.startPiece(cmd.chars);
      s.pendingPiece.set(up.input.stream, cmd.chars);
      s.pieceHasAudio.set(up.input.stream, false);
      return;
    case 'pieceEnd':
      up?.input.lane.endPiece();
      return;
    case 'chunk': {
      if (!up) return;
      const stream = up.input.stream;
      const before = h.frames.length;
      up.write(new Int16Array(480).fill(stream));
      const wrote = h.frames.slice(before).some((f) => f.kind === 'audio' && f.stream === stream);
      if (wrote && s.pieceHasAudio.get(stream) === false) {
        s.pieceHasAudio.set(stream, true);
        s.pieceChars.set(stream, (s.pieceChars.get(stream) ?? 0) + (s.pendingPiece.get(stream) ?? 0));
      }
      return;
    }
    case 'upstreamDone':
      // A real upstream is done only once its text is final.
      if (up && h.speakerContext()?.current?.final) up.sendBack({ type: 'UPSTREAM_DONE', stream: up.input.stream });
      return;
    case 'upstreamFails':
      up?.sendBack({ type: 'UPSTREAM_ERROR', stream: up.input.stream, reason: 'failed', error: { code: 'provider_unavailable', message: 'x' } });
      return;
    case 'released':
      up?.sendBack({ type: 'UPSTREAM_RELEASED', stream: up.input.stream });
      return;
    case 'playback': {
      const accepted = h.messages().filter((m) => m.type === 'speak.accepted').at(-1) as Extract<ServerMessage, { type: 'speak.accepted' }> | undefined;
      if (accepted) h.send({ type: 'PLAYBACK', stream: accepted.stream, playedMs: cmd.playedMs });
      return;
    }
    case 'stop':
      h.send({ type: 'STOP' });
      return;
    case 'tick':
      h.clock.increment(cmd.ms);
      return;
  }
}

function check(h: Harness, s: RunState, endedBy: 'disconnect' | 'shutdown') {
  const frames = h.frames;
  const at = (pred: (m: ServerMessage) => boolean) => frames.findIndex((f) => f.kind === 'message' && pred(f.message));
  const messages = h.messages();
  const ends = messages.filter((m): m is Extract<ServerMessage, { type: 'turn.end' }> => m.type === 'turn.end');
  // A1
  for (let n = 1; n <= s.nextTurn; n++) {
    const mine = ends.filter((e) => e.turn === `t${n}`);
    if (endedBy === 'shutdown') expect(mine, `t${n}`).toHaveLength(1);
    else expect(mine.length, `t${n}`).toBeLessThanOrEqual(1);
  }
  expect(ends.every((e) => Number(e.turn.slice(1)) <= s.nextTurn)).toBe(true);
  const close = frames.findIndex((f) => f.kind === 'close');
  if (endedBy === 'shutdown' && close >= 0) for (let i = close + 1; i < frames.length; i++) expect(frames[i]!.kind === 'message' && (frames[i] as { message: ServerMessage }).message.type === 'turn.end').toBe(false);
  for (const end of ends) {
    seen.statuses.set(end.status, (seen.statuses.get(end.status) ?? 0) + 1);
    const id = `reply:${end.turn}`;
    const accepted = messages.find((m) => m.type === 'speak.accepted' && m.id === id) as Extract<ServerMessage, { type: 'speak.accepted' }> | undefined;
    const written = messages.filter((m) => m.type === 'reply.text' && m.turn === end.turn).map((m) => (m as { text: string }).text).join('');
    const endIndex = at((m) => m.type === 'turn.end' && m.turn === end.turn);
    // A3 (prefix of what was written, whole words)
    expect(written.startsWith(end.heard)).toBe(true);
    if (end.heard) expect(/\s|$/.test(written.charAt(end.heard.length))).toBe(true);
    if (!accepted) {
      // A4
      expect(end.heard).toBe('');
      continue;
    }
    // A2
    const speakEnd = at((m) => m.type === 'speak.end' && m.id === id);
    expect(speakEnd).toBeGreaterThanOrEqual(0);
    expect(speakEnd).toBeLessThan(endIndex);
    const reason = (frames[speakEnd] as { message: Extract<ServerMessage, { type: 'speak.end' }> }).message.reason;
    expect(frames.slice(speakEnd).some((f) => f.kind === 'audio' && f.stream === accepted.stream)).toBe(false);
    // A3 (what went out bounds what was heard)
    const audio = frames.some((f) => f.kind === 'audio' && f.stream === accepted.stream);
    if (reason === 'completed') expect(end.heard).toBe(written.trim());
    else {
      if (!audio) expect(end.heard).toBe('');
      expect(nonSpaceChars(end.heard)).toBeLessThanOrEqual(s.pieceChars.get(accepted.stream) ?? 0);
    }
    if (end.heard) seen.heardSome++;
  }
  for (const status of ['superseded', 'empty']) {
    for (const e of ends.filter((x) => x.status === status)) expect(messages.some((m) => m.type === 'speak.accepted' && m.id === `reply:${e.turn}`)).toBe(false);
  }
}

// Two runs always made besides the random ones: a reply spoken whole, and one the user talks over
// after its first audio; so the coverage check below never depends on the luck of the draw.
const spokenReply: Command[] = [
  { t: 'userStarts' },
  { t: 'userHeard', text: 'words', failed: false },
  { t: 'delta', text: 'Hello ' },
  { t: 'delta', text: 'there. ' },
  { t: 'modelDone' },
  { t: 'piece', chars: 10 },
  { t: 'chunk' },
  { t: 'pieceEnd' },
];
const examples: Array<[Command[], 'disconnect' | 'shutdown']> = [
  [[...spokenReply, { t: 'upstreamDone' }, { t: 'released' }, { t: 'tick', ms: 1_000 }], 'shutdown'],
  [[...spokenReply, { t: 'userStarts' }, { t: 'bargeIn' }, { t: 'released' }, { t: 'tick', ms: 1_000 }], 'disconnect'],
];

test.prop([fc.array(commandArb, { minLength: 1, maxLength: 90, size: 'max' }), fc.constantFrom('disconnect' as const, 'shutdown' as const)], { examples })(
  'the agent turn keeps A1-A5 under any interleaving',
  (commands, endedBy) => {
    const h = createHarness({}, { agent: { modelDeadlineMs: 3_000 } });
    h.send({ type: 'START', sampleRate: 24_000, listen: grant, agent: {} });
    const s: RunState = { nextTurn: 0, open: null, pieceChars: new Map(), pieceHasAudio: new Map(), pendingPiece: new Map() };
    for (const cmd of commands) apply(h, cmd, s);
    h.send({ type: endedBy === 'disconnect' ? 'CLIENT_GONE' : 'SHUTDOWN' });
    // Releases the upstream would report, then every timer.
    for (let i = 0; i < 4; i++) {
      const up = h.liveUpstream();
      if (up) up.sendBack({ type: 'UPSTREAM_RELEASED', stream: up.input.stream });
      h.clock.increment(30_000);
    }
    seen.turns += s.nextTurn;
    check(h, s, endedBy);
    // A5
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.replies.every((r) => r.stopped)).toBe(true);
    expect(h.counts()).toMatchObject({ liveUpstreams: 0, liveWatchers: 0, pendingTimers: 0 });
    expect(h.errors).toEqual([]);
  },
);

test('the runs exercised every kind of turn end, and heard text', () => {
  // Runs after the property in this file (vitest keeps the order within a file).
  expect(seen.turns).toBeGreaterThan(50);
  for (const status of ['completed', 'interrupted', 'empty', 'superseded', 'failed']) expect(seen.statuses.get(status) ?? 0, status).toBeGreaterThan(0);
  expect(seen.heardSome).toBeGreaterThan(0);
});
