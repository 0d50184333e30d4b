// The session statechart while the next piece waits for a provider slot (issue 15, item 9):
// waiting one's turn in a busy worker pool is not a stalled upstream, but the wait stays bounded.
import { describe, expect, it } from 'vitest';
import { createHarness, testLimits, type Harness } from '../support/machineHarness.js';

const gap = testLimits.chunkGapTimeoutMs;

function streaming(id = 'a', final = true): Harness {
  const h = createHarness();
  h.send({ type: 'START', sampleRate: 24_000 });
  h.send({ type: 'SPEAK', request: { id, text: 'Hello there.', final, mode: 'interrupt' } });
  h.liveUpstream()!.write(new Int16Array(480).fill(1));
  return h;
}

const upstream = (h: Harness) => h.liveUpstream()!;
const queued = (h: Harness) => upstream(h).sendBack({ type: 'UPSTREAM_QUEUED', stream: upstream(h).input.stream });
const dequeued = (h: Harness) => upstream(h).sendBack({ type: 'UPSTREAM_DEQUEUED', stream: upstream(h).input.stream });
const ends = (h: Harness) => h.messages().filter((m) => m.type === 'speak.end');
const inState = (h: Harness, sub: 'flowing' | 'queued' | 'awaitingText' | 'paused') => h.speakerIn({ active: { live: { streaming: sub } } });

describe('an upstream waiting for a provider slot', () => {
  it('is not a stall however long it waits, and the gap clock starts over once it has a slot', () => {
    const h = streaming();
    queued(h);
    expect(inState(h, 'queued')).toBe(true);
    h.clock.increment(gap * 5);
    expect(ends(h)).toEqual([]);
    dequeued(h);
    expect(inState(h, 'flowing')).toBe(true);
    h.clock.increment(gap - 1);
    expect(ends(h)).toEqual([]);
    h.clock.increment(1);
    expect(ends(h)).toMatchObject([{ id: 'a', reason: 'timeout', error: { code: 'upstream_stalled' } }]);
  });

  it('goes back to flowing with the piece\'s first audio, through the lane afterwards', () => {
    const h = streaming();
    queued(h);
    upstream(h).write(new Int16Array(480).fill(2)); // the lane is closed while queued: this one is an event
    expect(inState(h, 'flowing')).toBe(true);
    const lane = h.counts().laneChunks;
    upstream(h).write(new Int16Array(480).fill(3));
    expect(h.counts().laneChunks).toBe(lane + 1);
    upstream(h).sendBack({ type: 'UPSTREAM_DONE', stream: 1 });
    expect(ends(h)).toMatchObject([{ id: 'a', reason: 'completed', stats: { chunks: 3 } }]);
  });

  it('is still bounded by the utterance time limit', () => {
    const h = streaming();
    queued(h);
    h.clock.increment(testLimits.utteranceTimeoutMs + 1);
    expect(ends(h)).toMatchObject([{ id: 'a', reason: 'timeout', error: { code: 'utterance_timeout' } }]);
  });

  it('before the first audio, the first-audio deadline applies (a new utterance is refused early instead)', () => {
    const h = createHarness();
    h.send({ type: 'START', sampleRate: 24_000 });
    h.send({ type: 'SPEAK', request: { id: 'a', text: 'Hello.', final: true, mode: 'interrupt' } });
    queued(h);
    h.clock.increment(testLimits.firstAudioTimeoutMs + 1);
    expect(ends(h)).toMatchObject([{ id: 'a', reason: 'timeout', error: { code: 'first_audio_timeout' } }]);
  });

  it('waiting for a slot after waiting for text leaves the text wait (no text-idle timeout)', () => {
    const h = streaming('a', false);
    upstream(h).sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    expect(inState(h, 'awaitingText')).toBe(true);
    h.send({ type: 'SPEAK', request: { id: 'a', text: ' More text.', final: true, mode: 'interrupt' } });
    queued(h);
    expect(inState(h, 'queued')).toBe(true);
    h.clock.increment(testLimits.textIdleTimeoutMs * 2);
    expect(ends(h)).toEqual([]);
    upstream(h).write(new Int16Array(480).fill(2));
    expect(inState(h, 'flowing')).toBe(true);
    expect(h.speakerContext()?.current?.outlet.isOpen).toBe(true); // the wait for text is over: chunks pass again
  });

  it('backpressure while queued pauses; the wait report is ignored while paused, and a drain restarts the gap clock', () => {
    const h = streaming();
    queued(h);
    h.send({ type: 'CLIENT_BACKPRESSURE' });
    expect(inState(h, 'paused')).toBe(true);
    dequeued(h); // the upstream stops reporting while paused
    expect(inState(h, 'paused')).toBe(true);
    h.clock.increment(gap * 2);
    h.send({ type: 'CLIENT_DRAINED' });
    expect(inState(h, 'flowing')).toBe(true);
    queued(h); // reported again on RESUME
    expect(inState(h, 'queued')).toBe(true);
    h.clock.increment(gap * 2);
    expect(ends(h)).toEqual([]);
  });

  it('ignores the reports of another stream', () => {
    const h = streaming();
    upstream(h).sendBack({ type: 'UPSTREAM_QUEUED', stream: 99 });
    expect(inState(h, 'flowing')).toBe(true);
    h.clock.increment(gap);
    expect(ends(h)).toMatchObject([{ id: 'a', error: { code: 'upstream_stalled' } }]);
  });
});
