// Moving a session off a dead gateway (planMove), over random sessions, random crash points and
// random client positions. The dead gateway sent a sequence of frames: every utterance accepted
// up front, then each one's audio and end in turn (completed, or cut short at a random frame),
// until it died in the middle of one. Its record holds every accepted utterance and every end
// before the crash. The client got a prefix of what was sent. The gateway taking over follows the
// plan: ends at once, replays from after the client's seq, an utterance speaks all its audio
// and completes. Invariants, per stream, over what the client got from both gateways:
//   - exactly one speak.accepted and one speak.end;
//   - audio seqs 0, 1, 2 … each once and in order, all of them for a completed (or moved-open)
//     utterance, exactly those up to the cut for one cut short;
//   - a refusal is frames_gone, exactly when the client lacks audio of an utterance cut short.
import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { planMove, type RecordedUtterance, type SpeakEndMessage } from '../../src/engine/sessionMove.js';
import { resumeCursor, type ClientFrame } from '../support/voiceClient.js';

const stats = { chunks: 0, bytes: 0, firstAudioMs: null, durationMs: 0 };
const endMessage = (stream: number, reason: SpeakEndMessage['reason']): SpeakEndMessage => ({ type: 'speak.end', id: `u${stream}`, stream, reason, stats });

interface Plan {
  /** Audio frames each utterance's speech has in full. */
  total: number;
  /** Where it is cut short (a seq, -1: before any audio), or null: it completes. */
  cutAt: number | null;
}

const utteranceArb = fc.integer({ min: 0, max: 6 }).chain((total) =>
  fc.record({ total: fc.constant(total), cutAt: fc.option(fc.integer({ min: -1, max: Math.max(-1, total - 1) }), { nil: null }) }),
);

test.prop([fc.array(utteranceArb, { minLength: 1, maxLength: 5 }), fc.nat(), fc.nat()])('a moved session gives each stream its frames once, in order, and one end', (plans: Plan[], crashSeed, clientSeed) => {
  // What the dead gateway sent, in order.
  const sent: ClientFrame[] = plans.map((_, i) => ({ kind: 'message', message: { type: 'speak.accepted', id: `u${i + 1}`, stream: i + 1 } }) as ClientFrame);
  const ends: Array<{ at: number; stream: number; lastSeq: number; reason: SpeakEndMessage['reason'] }> = [];
  plans.forEach((p, i) => {
    const stream = i + 1;
    const frames = p.cutAt === null ? p.total : p.cutAt + 1;
    for (let seq = 0; seq < frames; seq++) sent.push({ kind: 'audio', stream, seq, pcm: new Int16Array(1).fill(seq) } as ClientFrame);
    ends.push({ at: sent.length, stream, lastSeq: frames - 1, reason: p.cutAt === null ? 'completed' : 'stopped' });
    sent.push({ kind: 'message', message: endMessage(stream, p.cutAt === null ? 'completed' : 'stopped') } as ClientFrame);
  });
  // It died after `crash` frames; the record holds every acceptance and the ends sent before that.
  const crash = plans.length + (crashSeed % (sent.length - plans.length + 1));
  const got = clientSeed % (crash + 1);
  const recorded: RecordedUtterance[] = plans.map((_, i) => {
    const end = ends.find((e) => e.stream === i + 1 && e.at < crash);
    return { stream: i + 1, id: `u${i + 1}`, text: 'x', final: true, ...(end ? { end: { message: endMessage(end.stream, end.reason), lastSeq: end.lastSeq } } : {}) };
  });
  const client = sent.slice(0, got);
  const raw = resumeCursor(client);
  const cursor = { lastStream: raw.lastStream, streams: new Map(Object.entries(raw.streams).map(([s, q]) => [Number(s), q as number])) };
  const result = planMove(recorded, cursor);

  // The audio of an utterance cut short is not re-made (its end came from a STOP or a fault the
  // record does not replay): a client that lacks some of it is refused rather than given a hole.
  const clientSeq = (stream: number) => cursor.streams.get(stream) ?? (stream > cursor.lastStream ? -1 : Infinity);
  const lacksCutAudio = recorded.some((u) => u.end && u.end.message.reason !== 'completed' && clientSeq(u.stream) < u.end.lastSeq);
  if (!result.ok) {
    expect(result.reason).toBe('frames_gone');
    expect(lacksCutAudio).toBe(true);
    return;
  }
  expect(lacksCutAudio).toBe(false);
  // The new gateway's frames, as the plan says.
  const moved: ClientFrame[] = [];
  for (const { announce, utterance } of result.plan.ends) {
    if (announce) moved.push({ kind: 'message', message: { type: 'speak.accepted', id: utterance.id, stream: utterance.stream } } as ClientFrame);
    moved.push({ kind: 'message', message: utterance.end!.message } as ClientFrame);
  }
  for (const { announce, afterSeq, utterance } of result.plan.replays) {
    if (announce) moved.push({ kind: 'message', message: { type: 'speak.accepted', id: utterance.id, stream: utterance.stream } } as ClientFrame);
    const { total } = plans[utterance.stream - 1]!;
    for (let seq = afterSeq + 1; seq < total; seq++) moved.push({ kind: 'audio', stream: utterance.stream, seq, pcm: new Int16Array(1).fill(seq) } as ClientFrame);
    moved.push({ kind: 'message', message: endMessage(utterance.stream, 'completed') } as ClientFrame);
  }
  const all = [...client, ...moved];
  plans.forEach((p, i) => {
    const stream = i + 1;
    const accepted = all.filter((f) => f.kind === 'message' && f.message.type === 'speak.accepted' && f.message.stream === stream);
    const endsOf = all.filter((f) => f.kind === 'message' && f.message.type === 'speak.end' && f.message.stream === stream);
    expect(accepted, `stream ${stream} accepted`).toHaveLength(1);
    expect(endsOf, `stream ${stream} ends`).toHaveLength(1);
    const seqs = all.filter((f) => f.kind === 'audio' && f.stream === stream).map((f) => (f as { seq: number }).seq);
    const endedCut = recorded[i]!.end && p.cutAt !== null;
    const expected = endedCut ? p.cutAt! + 1 : p.total;
    expect(seqs, `stream ${stream} audio`).toEqual(Array.from({ length: expected }, (_, n) => n));
  });
});
