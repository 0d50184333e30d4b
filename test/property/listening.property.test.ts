// Property: whatever interleaving of microphone audio (speech, quiet speech, silence), recognizer
// partials, finals, errors and hangs, speak, assistant audio, STOP, input.commit, disconnects and
// timer expiry happens, listening keeps its laws. The pure charts run with the real listener host
// (test stand-ins for its ports), XState's SimulatedClock for wall time and the host's media clock.
//
//  L1 each started turn gets at most one final transcript, after its speech_started and its
//     speech_stopped, in that order, and nothing of it after; exactly one unless the client went
//     away mid-turn; turn ids are unique; partials only between speech_started and the final;
//  L2 a barge-in ends the playing and the queued utterances once each (reason interrupted), at
//     once, and no audio of them follows;
//  L3 an interruption happens only once the speech has lasted the threshold (from its onset on the
//     media clock, with the echo guard's extra since the assistant is audible); short bursts never;
//  L4 after the session ends: no recognition job, wall or media timer, listener host or upstream is
//     left, and no actor errored.
// The first property runs twice: with a synchronous VAD, and with one that decides later (as
// Silero does), whose decisions come back in batches the run chooses (`decide`).
// FC_NUM_RUNS sets the number of runs; a failure prints its seed and path (FC_SEED, FC_PATH replay it).
import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { defaultListenLimits, type ListenGrant, type ServerMessage } from '../../machines/types.js';
import { createHarness, type Frame, type Harness } from '../support/machineHarness.js';
import { bytesOf, laterVad, levelVad, pcmMicInput, ScriptedRecognizer, tone } from '../support/listeningStandIns.js';

type Command =
  | { t: 'mic'; kind: 'speech' | 'quiet' | 'silence'; ms: number }
  | { t: 'partial'; text: string }
  | { t: 'final'; text: string }
  | { t: 'fail'; code: 'recognizer_busy' | 'recognizer_failed' | 'recognizer_unavailable' }
  | { t: 'speak'; mode: 'interrupt' | 'enqueue' }
  | { t: 'chunk' }
  | { t: 'done' }
  | { t: 'released' }
  | { t: 'stop' }
  | { t: 'commit' }
  | { t: 'playback'; playedMs: number }
  | { t: 'tick'; ms: number }
  | { t: 'disconnect' }
  | { t: 'shutdown' }
  /** A VAD that decides later hands out this many decisions (nothing with a synchronous one). */
  | { t: 'decide'; count: number };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 60, arbitrary: fc.record({ t: fc.constant('mic' as const), kind: fc.constantFrom('speech' as const, 'quiet' as const, 'silence' as const), ms: fc.oneof(fc.integer({ min: 1, max: 25 }), fc.integer({ min: 26, max: 150 })).map((n) => n * 10) }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('partial' as const), text: fc.constantFrom('what', 'what time', 'hello') }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('final' as const), text: fc.constantFrom('', 'what time is it') }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('fail' as const), code: fc.constantFrom('recognizer_busy' as const, 'recognizer_failed' as const, 'recognizer_unavailable' as const) }) },
  { weight: 10, arbitrary: fc.record({ t: fc.constant('speak' as const), mode: fc.constantFrom('interrupt' as const, 'enqueue' as const) }) },
  { weight: 20, arbitrary: fc.constant({ t: 'chunk' as const }) },
  { weight: 4, arbitrary: fc.constant({ t: 'done' as const }) },
  { weight: 8, arbitrary: fc.constant({ t: 'released' as const }) },
  { weight: 3, arbitrary: fc.constant({ t: 'stop' as const }) },
  { weight: 4, arbitrary: fc.constant({ t: 'commit' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('playback' as const), playedMs: fc.integer({ min: 0, max: 5_000 }) }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 12_000 }) }) },
  { weight: 15, arbitrary: fc.record({ t: fc.constant('decide' as const), count: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 6, max: 400 })) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'disconnect' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'shutdown' as const }) },
);

const limits = defaultListenLimits;
/** What the runs exercised (checked below, so the properties are not vacuous). */
const seen = { turns: 0, finals: 0, bargeIns: 0, recognizerErrors: 0, lateTurns: 0, lateBargeIns: 0 };
const threshold = limits.interruptSpeechMs + limits.echoGuardExtraMs;
const grant: ListenGrant = { granted: true, format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', interruptions: true, recognizer: 'scripted' };

type Outcome = 'hang' | 'text' | 'error';

/** Each job's finish() does the next outcome (then hangs: the test's final/fail commands settle it). */
function listeningHarness(outcomes: Outcome[] = [], vad: ReturnType<typeof laterVad> | null = null) {
  let next = 0;
  const recognizer = new ScriptedRecognizer('scripted', ['en'], () => {
    const outcome = outcomes[next++] ?? 'hang';
    return outcome === 'hang' ? 'hang' : outcome === 'text' ? { text: 'what time is it' } : { error: 'recognizer_failed' };
  });
  let listeners = 0;
  let jobs = 0;
  let backlogMs = 0;
  const h = createHarness(
    {},
    {
      listen: {
        recognizers: new Map([[recognizer.name, recognizer]]),
        createVad: () => vad ?? levelVad(),
        createMicInput: () => pcmMicInput(),
        limits,
        hooks: {
          listenerStarted: () => listeners++,
          listenerStopped: () => listeners--,
          jobStarted: () => jobs++,
          jobEnded: () => jobs--,
          vadBacklog: (ms) => (backlogMs += ms),
        },
      },
    },
  );
  h.send({ type: 'START', sampleRate: 24_000, listen: grant });
  return { h, recognizer, vad, live: () => ({ listeners, jobs, recognizerJobs: recognizer.live }), backlogMs: () => backlogMs };
}

/** Let settled recognition promises deliver their events. */
const flush = async () => {
  for (let i = 0; i < 4; i++) await Promise.resolve();
};

const messagesOf = (frames: Frame[]) => frames.flatMap((f, i) => (f.kind === 'message' ? [{ i, m: f.message }] : []));

async function apply(run: ReturnType<typeof listeningHarness>, cmd: Command, state: { speakId: number; micMs: number }) {
  const { h, recognizer } = run;
  const job = recognizer.jobs.filter((j) => !j.cancelled).at(-1);
  switch (cmd.t) {
    case 'mic': {
      // Frames of at most 250 ms (what the gate takes), the last one shorter.
      for (let left = cmd.ms; left > 0; left -= 250) {
        const ms = Math.min(250, left);
        const pcm = cmd.kind === 'silence' ? new Int16Array(ms * 16) : tone(ms, cmd.kind === 'speech' ? -20 : -45);
        h.send({ type: 'MIC_AUDIO', payload: new Uint8Array(bytesOf(pcm)) });
        state.micMs += ms;
        if (h.actor.getSnapshot().status !== 'active') break;
      }
      return;
    }
    case 'partial':
      job?.partial(cmd.text);
      return;
    case 'final':
      if (job?.finished) job.resolve(cmd.text);
      await flush();
      return;
    case 'fail':
      if (job?.finished) job.reject(cmd.code);
      await flush();
      return;
    case 'speak':
      h.send({ type: 'SPEAK', request: { id: `u${state.speakId++}`, text: 'Hello there.', final: true, mode: cmd.mode } });
      return;
    case 'chunk': {
      const up = h.liveUpstream();
      up?.write(new Int16Array(480).fill(up.input.stream));
      return;
    }
    case 'done': {
      const up = h.liveUpstream();
      up?.sendBack({ type: 'UPSTREAM_DONE', stream: up.input.stream });
      return;
    }
    case 'released': {
      const up = h.liveUpstream();
      up?.sendBack({ type: 'UPSTREAM_RELEASED', stream: up.input.stream });
      return;
    }
    case 'stop':
      h.send({ type: 'STOP' });
      return;
    case 'commit':
      h.send({ type: 'COMMIT' });
      return;
    case 'playback':
      h.send({ type: 'PLAYBACK', stream: 1, playedMs: cmd.playedMs });
      return;
    case 'tick':
      h.clock.increment(cmd.ms);
      await flush();
      return;
    case 'disconnect':
      h.send({ type: 'CLIENT_GONE' });
      return;
    case 'shutdown':
      h.send({ type: 'SHUTDOWN' });
      return;
    case 'decide':
      run.vad?.answer(cmd.count);
      await flush();
      return;
  }
}

function checkTurns(h: Harness, endedBy: 'disconnect' | 'shutdown') {
  const all = messagesOf(h.frames);
  const turns = new Map<string, { started: number; stopped: number[]; finals: number[]; partials: number[]; other: number[] }>();
  for (const { i, m } of all) {
    if (m.type === 'input.speech_started') {
      expect(turns.has(m.turn)).toBe(false); // unique ids
      turns.set(m.turn, { started: i, stopped: [], finals: [], partials: [], other: [] });
      continue;
    }
    if (m.type !== 'input.speech_stopped' && m.type !== 'transcript') continue;
    const turn = turns.get(m.turn);
    expect(turn).toBeDefined();
    if (m.type === 'input.speech_stopped') turn!.stopped.push(i);
    else if (m.final) turn!.finals.push(i);
    else turn!.partials.push(i);
  }
  const ids = [...turns.keys()];
  ids.forEach((id, n) => {
    expect(id).toBe(`t${n + 1}`);
    const t = turns.get(id)!;
    expect(t.finals.length).toBeLessThanOrEqual(1);
    expect(t.stopped.length).toBeLessThanOrEqual(1);
    const last = n === ids.length - 1;
    if (!(last && endedBy === 'disconnect')) expect(t.finals).toHaveLength(1);
    if (t.finals.length === 1) {
      expect(t.stopped).toHaveLength(1);
      expect(t.started).toBeLessThan(t.stopped[0]!);
      expect(t.stopped[0]!).toBeLessThan(t.finals[0]!);
      for (const p of t.partials) expect(p).toBeLessThan(t.finals[0]!);
    }
    for (const p of t.partials) expect(p).toBeGreaterThan(t.started);
  });
  // On shutdown every final goes out before the close.
  const close = h.frames.findIndex((f) => f.kind === 'close');
  if (close >= 0) for (const t of turns.values()) for (const f of t.finals) expect(f).toBeLessThan(close);
}

test.prop([
  // 'medium': interleavings long enough that turns, their failures and barge-ins all happen in
  // a default run of 100 (the coverage check below); the default 'small' stayed under ~10 commands.
  fc.array(commandArb, { minLength: 1, maxLength: 80, size: 'medium' }),
  fc.constantFrom('disconnect' as const, 'shutdown' as const),
  fc.array(fc.constantFrom<Outcome>('hang', 'text', 'text', 'error'), { maxLength: 10 }),
  fc.constantFrom('now' as const, 'later' as const),
])(
  'listening keeps one final per turn, barge-in ends everything once, and releases everything (VAD deciding now or later)',
  async (commands, ending, outcomes, decides) => {
    const run = listeningHarness(outcomes, decides === 'later' ? laterVad() : null);
    const { h } = run;
    const state = { speakId: 0, micMs: 0 };
    let endedBy: 'disconnect' | 'shutdown' = ending;
    for (const cmd of commands) {
      if (h.actor.getSnapshot().status !== 'active') break;
      const before = h.frames.length;
      const accepted = new Set<number>();
      const ended = new Set<number>();
      for (const { m } of messagesOf(h.frames)) {
        if (m.type === 'speak.accepted') accepted.add(m.stream);
        if (m.type === 'speak.end') ended.add(m.stream);
      }
      await apply(run, cmd, state);
      if (cmd.t === 'disconnect' || cmd.t === 'shutdown') endedBy = cmd.t;
      const now = messagesOf(h.frames.slice(before)).map((x) => x.m);
      const interrupted = now.filter((m): m is Extract<ServerMessage, { type: 'speak.end' }> => m.type === 'speak.end' && m.reason === 'interrupted');
      if (interrupted.length > 0) {
        // L2: everything that was accepted and not ended ends now, interrupted, once each.
        // (Only a VAD decision moves the listener: with a late VAD, it comes when decisions do.)
        expect(cmd.t).toBe(run.vad ? 'decide' : 'mic');
        expect(new Set(interrupted.map((m) => m.stream))).toEqual(new Set([...accepted].filter((s) => !ended.has(s))));
        // L3: the speech had lasted the threshold since its onset.
        const started = messagesOf(h.frames).filter((x) => x.m.type === 'input.speech_started').at(-1)?.m as Extract<ServerMessage, { type: 'input.speech_started' }>;
        expect(started).toBeDefined();
        expect(state.micMs - started.audioMs).toBeGreaterThanOrEqual(threshold);
      }
    }
    if (h.actor.getSnapshot().status === 'active') h.send({ type: ending === 'disconnect' ? 'CLIENT_GONE' : 'SHUTDOWN' });
    await flush();

    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.errors).toEqual([]);
    checkTurns(h, endedBy);

    // L2: one end per accepted utterance; no audio of a stream after its end.
    const accepted = new Set<number>();
    const endAt = new Map<number, number>();
    h.frames.forEach((f, i) => {
      if (f.kind === 'message' && f.message.type === 'speak.accepted') accepted.add(f.message.stream);
      if (f.kind === 'message' && f.message.type === 'speak.end') {
        expect(endAt.has(f.message.stream)).toBe(false);
        endAt.set(f.message.stream, i);
      }
      if (f.kind === 'audio') expect(endAt.has(f.stream)).toBe(false);
    });
    for (const stream of accepted) expect(h.ended.filter((r) => r.stream === stream)).toHaveLength(1);

    const messages = h.messages();
    seen.turns += messages.filter((m) => m.type === 'input.speech_started').length;
    seen.finals += messages.filter((m) => m.type === 'transcript' && m.final).length;
    seen.bargeIns += messages.filter((m) => m.type === 'speak.end' && m.reason === 'interrupted').length;
    seen.recognizerErrors += messages.filter((m) => m.type === 'error' && m.code.startsWith('recognizer_')).length;
    if (run.vad) {
      seen.lateTurns += messages.filter((m) => m.type === 'input.speech_started').length;
      seen.lateBargeIns += messages.filter((m) => m.type === 'speak.end' && m.reason === 'interrupted').length;
    }

    // L4: nothing left.
    expect(run.live()).toEqual({ listeners: 0, jobs: 0, recognizerJobs: 0 });
    expect(h.counts()).toMatchObject({ liveUpstreams: 0, liveWatchers: 0, pendingTimers: 0 });
    expect(Object.keys(h.actor.getSnapshot().children)).toEqual([]);
    // …and no audio waiting for decisions: the late VAD closed, its answers would find nobody.
    expect(run.backlogMs()).toBe(0);
    if (run.vad) expect(run.vad.closed).toBe(true);
  },
);

test.prop([
  fc.array(fc.record({ speechMs: fc.integer({ min: 1, max: 55 }).map((n) => n * 10), gapMs: fc.integer({ min: 80, max: 200 }).map((n) => n * 10) }), { minLength: 1, maxLength: 12 }),
])('bursts shorter than the threshold, apart by more than the endpoint, never interrupt', async (bursts) => {
  const run = listeningHarness();
  const { h } = run;
  h.send({ type: 'SPEAK', request: { id: 'long', text: 'A long answer.', final: false, mode: 'interrupt' } });
  h.liveUpstream()!.write(new Int16Array(480).fill(1));
  for (const { speechMs, gapMs } of bursts) {
    h.send({ type: 'MIC_AUDIO', payload: new Uint8Array(bytesOf(tone(speechMs))) });
    h.send({ type: 'MIC_AUDIO', payload: new Uint8Array(bytesOf(new Int16Array(Math.min(250, gapMs) * 16))) });
    for (let left = gapMs - 250; left > 0; left -= 250) h.send({ type: 'MIC_AUDIO', payload: new Uint8Array(bytesOf(new Int16Array(Math.min(250, left) * 16))) });
    // Settle each turn so the next burst can start one.
    run.recognizer.jobs.filter((j) => !j.cancelled && j.finished).forEach((j) => j.resolve(''));
    await flush();
  }
  expect(h.messages().some((m) => m.type === 'speak.end')).toBe(false);
  h.send({ type: 'CLIENT_GONE' });
  expect(run.live()).toEqual({ listeners: 0, jobs: 0, recognizerJobs: 0 });
});

test.prop([
  fc.integer({ min: 0, max: 3 }),
  fc.integer({ min: 0, max: 200 }).map((n) => n * 10),
  fc.integer({ min: 1, max: 25 }).map((n) => n * 10),
  fc.integer({ min: 1, max: 25 }),
  fc.option(fc.integer({ min: 1, max: 30 }), { nil: null }),
])('while an utterance plays, user speech interrupts it and the queue exactly when it lasts the threshold (VAD deciding now or later)', async (queued, speechMs, frameMs, chunks, decidePerFrame) => {
  // decidePerFrame: a VAD that decides later hands out at most this many decisions after each mic frame, the rest at the end.
  const run = listeningHarness(['text'], decidePerFrame === null ? null : laterVad());
  const { h } = run;
  h.send({ type: 'SPEAK', request: { id: 'playing', text: 'A long answer.', final: true, mode: 'interrupt' } });
  for (let q = 0; q < queued; q++) h.send({ type: 'SPEAK', request: { id: `q${q}`, text: 'Later.', final: true, mode: 'enqueue' } });
  const up = h.liveUpstream()!;
  for (let c = 0; c < chunks; c++) up.write(new Int16Array(480).fill(up.input.stream));
  const speech = tone(speechMs);
  for (let at = 0; at < speech.length; at += frameMs * 16) {
    h.send({ type: 'MIC_AUDIO', payload: new Uint8Array(bytesOf(speech.subarray(at, Math.min(speech.length, at + frameMs * 16)))) });
    if (run.vad) {
      run.vad.answer(decidePerFrame!);
      await flush();
    }
    // The upstream keeps sending after the interruption: none of it may reach the client.
    if (h.liveUpstream()) h.liveUpstream()!.write(new Int16Array(480).fill(up.input.stream));
  }
  for (let i = 0; run.vad && i < 100; i++) {
    run.vad.answer();
    await flush();
  }
  const ends = h.messages().filter((m): m is Extract<ServerMessage, { type: 'speak.end' }> => m.type === 'speak.end');
  // The VAD decides per 20 ms frame: the speech it heard is speechMs rounded down to a frame.
  const heardMs = Math.floor(speechMs / 20) * 20;
  if (heardMs >= threshold) {
    expect(ends.map((e) => e.reason)).toEqual(Array(queued + 1).fill('interrupted'));
    seen.bargeIns += ends.length;
    if (run.vad) seen.lateBargeIns += ends.length;
  } else {
    expect(ends).toEqual([]);
  }
  const endAt = h.frames.findIndex((f) => f.kind === 'message' && f.message.type === 'speak.end');
  if (endAt >= 0) expect(h.frames.slice(endAt).some((f) => f.kind === 'audio')).toBe(false);
  h.send({ type: 'CLIENT_GONE' });
  expect(run.live()).toEqual({ listeners: 0, jobs: 0, recognizerJobs: 0 });
});

test('the interleavings above made turns, finals, recognizer errors and barge-ins', () => {
  expect(seen.turns).toBeGreaterThan(0);
  expect(seen.finals).toBeGreaterThan(0);
  expect(seen.recognizerErrors).toBeGreaterThan(0);
  expect(seen.bargeIns).toBeGreaterThan(0);
  expect(seen.lateTurns).toBeGreaterThan(0);
  expect(seen.lateBargeIns).toBeGreaterThan(0);
});
