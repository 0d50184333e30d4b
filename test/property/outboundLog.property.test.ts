// The outbound log's replay over random sessions and random drop points: a client that got the
// first k frames, on a connection the server saw drop after d >= k frames, while the session went
// on to m frames, is given exactly what it missed: with the frames it had, every stream frame of
// the session once and in order, and the control messages written after the drop. When the log's
// bounds trimmed something it needs, the replay is refused (frames_gone), never given with a hole.
import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { MemoryOutboundLog, type OutboundFrame } from '../../src/engine/outboundLog.js';
import { resumeCursor, type ClientFrame } from '../support/voiceClient.js';

type Step = 'accept' | 'audio' | 'endCurrent' | 'endQueued' | 'note';

/** A plausible session: streams accepted in order, audio of one playing stream at a time, ends once. */
function session(steps: readonly Step[]): OutboundFrame[] {
  const frames: OutboundFrame[] = [];
  let nextStream = 1;
  const queue: number[] = [];
  let current: { stream: number; seq: number } | null = null;
  const end = (stream: number) => frames.push({ kind: 'message', message: { type: 'speak.end', id: `u${stream}`, stream, reason: 'completed', stats: { chunks: 0, bytes: 0, firstAudioMs: null, durationMs: 0 } } });
  for (const step of steps) {
    if (step === 'accept') {
      queue.push(nextStream);
      frames.push({ kind: 'message', message: { type: 'speak.accepted', id: `u${nextStream}`, stream: nextStream } });
      nextStream++;
    } else if (step === 'audio') {
      if (!current && queue.length > 0) current = { stream: queue.shift()!, seq: 0 };
      if (current) frames.push({ kind: 'audio', stream: current.stream, seq: current.seq++, pcm: new Int16Array(8).fill(current.stream * 1000 + current.seq) });
    } else if (step === 'endCurrent') {
      if (current) end(current.stream);
      current = null;
    } else if (step === 'endQueued') {
      const stream = queue.pop();
      if (stream !== undefined) end(stream);
    } else {
      frames.push({ kind: 'message', message: { type: 'error', code: 'bad_request', message: `note ${frames.length}` } });
    }
  }
  return frames;
}

const asClient = (frames: readonly OutboundFrame[]): ClientFrame[] => frames.map((f) => (f.kind === 'audio' ? { ...f, at: 0 } : { ...f, at: 0 }));
const isStreamFrame = (f: OutboundFrame) => f.kind === 'audio' || f.message.type === 'speak.accepted' || f.message.type === 'speak.end';
const comparable = (f: OutboundFrame) => (f.kind === 'audio' ? { audio: [f.stream, f.seq, [...f.pcm]] } : { message: f.message });

test.prop([
  fc.array(fc.constantFrom<Step>('accept', 'audio', 'audio', 'audio', 'endCurrent', 'endQueued', 'note'), { minLength: 1, maxLength: 80 }),
  fc.nat(),
  fc.nat(),
  fc.option(fc.integer({ min: 100, max: 4_000 }), { nil: undefined }),
  fc.option(fc.integer({ min: 2, max: 60 }), { nil: undefined }),
])('replay gives exactly what was missed, or refuses with frames_gone when a bound trimmed it', (steps, dropSeed, gotSeed, maxBytes, windowSteps) => {
  const frames = session(steps);
  const dropped = dropSeed % (frames.length + 1);
  const got = gotSeed % (dropped + 1);
  let clock = 0;
  const log = new MemoryOutboundLog({ windowMs: windowSteps ?? 1e9, maxBytes: maxBytes ?? 1e9, now: () => clock });
  frames.forEach((frame, i) => {
    if (i === dropped) log.markDropped();
    clock++;
    log.append(frame);
  });
  if (dropped === frames.length) log.markDropped();
  const verdict = log.replay({ lastStream: resumeCursor(asClient(frames.slice(0, got))).lastStream, streams: new Map(Object.entries(resumeCursor(asClient(frames.slice(0, got))).streams).map(([s, q]) => [Number(s), q])) });
  const expected = [...frames.slice(0, got), ...frames.slice(got).filter((f, i) => isStreamFrame(f) || got + i >= dropped)];
  if (verdict.ok) {
    expect([...frames.slice(0, got), ...verdict.frames].map(comparable)).toEqual(expected.map(comparable));
  } else {
    expect(verdict.reason).toBe('frames_gone');
    // Refused only when a bound was in force.
    expect(maxBytes !== undefined || windowSteps !== undefined).toBe(true);
  }
});

test.prop([fc.array(fc.constantFrom<Step>('accept', 'audio', 'audio', 'endCurrent', 'endQueued'), { minLength: 1, maxLength: 60 }), fc.nat()])(
  'a cursor naming a stream never accepted, or listing one above lastStream, is refused (bad_cursor)',
  (steps, seed) => {
    const frames = session(steps);
    const log = new MemoryOutboundLog({ windowMs: 1e9, maxBytes: 1e9 });
    for (const f of frames) log.append(f);
    const accepted = frames.filter((f) => f.kind === 'message' && f.message.type === 'speak.accepted').length;
    const last = seed % (accepted + 1);
    expect(log.replay({ lastStream: accepted + 1, streams: new Map() })).toMatchObject({ ok: false, reason: 'bad_cursor' });
    expect(log.replay({ lastStream: last, streams: new Map([[last + 1, -1]]) })).toMatchObject({ ok: false, reason: 'bad_cursor' });
  },
);
