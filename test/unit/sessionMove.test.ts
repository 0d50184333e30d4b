// planMove: what a gateway taking a session over owes its client, from the record and the
// client's cursor. Each case is one way the client and the dead gateway can have parted.
import { describe, expect, it } from 'vitest';
import { planMove, type RecordedUtterance, type SpeakEndMessage } from '../../src/engine/sessionMove.js';

const stats = { textChars: 1, audioMs: 0, firstAudioMs: null, frames: 0 } as unknown as SpeakEndMessage['stats'];
const end = (stream: number, reason: SpeakEndMessage['reason'], lastSeq: number): RecordedUtterance['end'] => ({
  message: { type: 'speak.end', id: `u${stream}`, stream, reason, stats },
  lastSeq,
});
const u = (stream: number, ended?: RecordedUtterance['end']): RecordedUtterance => ({ stream, id: `u${stream}`, text: `text ${stream}`, final: true, ...(ended ? { end: ended } : {}) });
const cursor = (lastStream: number, streams: Record<number, number>) => ({ lastStream, streams: new Map(Object.entries(streams).map(([s, q]) => [Number(s), q])) });

describe('planMove', () => {
  it('replays the open utterance from after the client’s seq, and announces the queued one it never saw', () => {
    const result = planMove([u(1, end(1, 'completed', 9)), u(2), u(3)], cursor(2, { 2: 4 }));
    expect(result).toEqual({
      ok: true,
      plan: {
        ends: [],
        replays: [
          { announce: false, afterSeq: 4, utterance: u(2) },
          { announce: true, afterSeq: -1, utterance: u(3) },
        ],
      },
    });
  });

  it('sends an end the client missed at once when it has all the audio; replays a completed one whose tail it missed', () => {
    const whole = planMove([u(1, end(1, 'stopped', 6)), u(2, end(2, 'completed', 8))], cursor(2, { 1: 6, 2: 3 }));
    expect(whole.ok && whole.plan.ends.map((e) => e.utterance.stream)).toEqual([1]);
    expect(whole.ok && whole.plan.replays).toEqual([{ announce: false, afterSeq: 3, utterance: u(2, end(2, 'completed', 8)) }]);
  });

  it('refuses (frames_gone) a cut-short utterance whose missing audio the record cannot give back', () => {
    expect(planMove([u(1, end(1, 'stopped', 6))], cursor(1, { 1: 2 }))).toMatchObject({ ok: false, reason: 'frames_gone' });
  });

  it('refuses a stream the record never got (accepted just before the gateway died), and a cursor that lists streams above lastStream', () => {
    expect(planMove([u(1)], cursor(2, { 2: -1 }))).toMatchObject({ ok: false, reason: 'frames_gone' });
    expect(planMove([u(1), u(2)], cursor(1, { 2: 0 }))).toMatchObject({ ok: false, reason: 'bad_cursor' });
  });

  it('owes nothing for an utterance the client saw end, and orders replays by stream', () => {
    const result = planMove([u(3), u(1, end(1, 'completed', 5)), u(2)], cursor(1, {}));
    expect(result.ok && result.plan.replays.map((r) => [r.utterance.stream, r.announce])).toEqual([
      [2, true],
      [3, true],
    ]);
    expect(result.ok && result.plan.ends).toEqual([]);
  });
});
