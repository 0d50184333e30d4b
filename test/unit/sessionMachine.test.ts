// Directed scenarios of the session statechart (the property tests cover interleavings).
import { describe, expect, it } from 'vitest';
import { createHarness, testLimits, type Harness } from '../support/machineHarness.js';

function started(): Harness {
  const h = createHarness();
  h.send({ type: 'START', sampleRate: 24_000 });
  return h;
}

function speak(h: Harness, id: string, extra: Partial<{ text: string; final: boolean; mode: 'interrupt' | 'enqueue'; voice: string }> = {}) {
  h.send({ type: 'SPEAK', request: { id, text: extra.text ?? 'Hello.', final: extra.final ?? true, mode: extra.mode ?? 'interrupt', ...(extra.voice ? { voice: extra.voice } : {}) } });
}

function audio(h: Harness, stream?: number, marker?: number) {
  const up = h.liveUpstream()!;
  const s = stream ?? up.input.stream;
  up.sendBack({ type: 'UPSTREAM_AUDIO', stream: s, pcm: new Int16Array(480).fill(marker ?? s) });
}

describe('sessionMachine', () => {
  it('answers session.start with the negotiated format, falling back to the default rate', () => {
    const h = createHarness();
    h.send({ type: 'START', sampleRate: 44_100 });
    const ready = h.messages()[0]!;
    expect(ready).toMatchObject({ type: 'session.ready', protocol: 1, format: { sampleRate: 24_000, channels: 1 } });
  });

  it('closes with 1008 when no session.start arrives in time, and leaves nothing running', () => {
    const h = createHarness();
    h.clock.increment(testLimits.handshakeTimeoutMs + 1);
    expect(h.messages()).toEqual([{ type: 'error', code: 'handshake_timeout', message: 'no session.start in time' }]);
    expect(h.frames.at(-1)).toEqual({ kind: 'close', code: 1008 });
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.counts()).toMatchObject({ pendingTimers: 0 });
  });

  it('starts its speaker with the first speak frame, which the speaker gets: an idle session is one actor', () => {
    const h = started();
    expect(h.actor.getSnapshot().children).toEqual({});
    h.send({ type: 'STOP' }); // nothing to stop, nothing started
    h.send({ type: 'CLIENT_BACKPRESSURE' });
    expect(h.actor.getSnapshot().children).toEqual({});
    speak(h, 'a');
    expect(Object.keys(h.actor.getSnapshot().children)).toEqual(['speaker']);
    expect(h.messages().map((m) => m.type)).toEqual(['session.ready', 'speak.accepted']);
    expect(h.upstreams.map((u) => u.input.id)).toEqual(['a']);
    expect(h.speakerIn({ active: 'live' })).toBe(true);
  });

  it('plays, completes, and starts the next utterance only after the upstream released', () => {
    const h = started();
    speak(h, 'a');
    speak(h, 'b', { mode: 'enqueue' });
    audio(h);
    h.liveUpstream()!.sendBack({ type: 'UPSTREAM_DONE', stream: 1 });
    expect(h.speakerIn({ active: 'stopping' })).toBe(true);
    expect(h.upstreams).toHaveLength(1); // b waits for a's release
    expect(h.upstreams[0]!.commands).toEqual(['CANCEL']);
    h.upstreams[0]!.sendBack({ type: 'UPSTREAM_RELEASED', stream: 1 });
    expect(h.upstreams).toHaveLength(2);
    expect(h.upstreams[1]!.input).toMatchObject({ id: 'b', stream: 2, text: 'Hello.' });
    expect(h.overlaps).toEqual([]);
  });

  it('an upstream done and already let go (released) hands over at once: no CANCEL, no wait', () => {
    const h = started();
    speak(h, 'a');
    speak(h, 'b', { mode: 'enqueue' });
    audio(h);
    h.liveUpstream()!.sendBack({ type: 'UPSTREAM_DONE', stream: 1, released: true });
    expect(h.messages().filter((m) => m.type === 'speak.end')).toEqual([expect.objectContaining({ id: 'a', reason: 'completed' })]);
    expect(h.upstreams[0]!.commands).toEqual([]);
    expect(h.upstreams).toHaveLength(2);
    expect(h.upstreams[1]!.input).toMatchObject({ id: 'b', stream: 2 });
    expect(h.overlaps).toEqual([]);
  });

  it('STOP sends stopped ends for the playing and queued utterances before anything else', () => {
    const h = started();
    speak(h, 'a');
    speak(h, 'b', { mode: 'enqueue' });
    speak(h, 'c', { mode: 'enqueue' });
    audio(h);
    const before = h.frames.length;
    h.send({ type: 'STOP' });
    const out = h.frames.slice(before);
    expect(out.map((f) => (f.kind === 'message' && f.message.type === 'speak.end' ? [f.message.id, f.message.reason] : f))).toEqual([
      ['a', 'stopped'],
      ['b', 'stopped'],
      ['c', 'stopped'],
    ]);
    // Late audio from the stopped upstream never goes out.
    audio(h, 1);
    expect(h.frames.slice(before)).toHaveLength(3);
  });

  it('a chunk skips the event only while the utterance streams: never the first, never after a wait for text, never after its end', () => {
    const h = started();
    speak(h, 'a', { final: false });
    const up = h.liveUpstream()!;
    const chunk = () => up.write(new Int16Array(480).fill(1));
    chunk(); // the first chunk moves connecting → streaming: it must be an event
    expect(h.counts().laneChunks).toBe(0);
    chunk();
    chunk();
    expect(h.counts().laneChunks).toBe(2);
    const streaming = (sub: 'flowing' | 'paused' | 'awaitingText') => h.speakerIn({ active: { live: { streaming: sub } } });
    up.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    h.send({ type: 'CLIENT_BACKPRESSURE' }); // paused while the upstream waits for text
    chunk(); // clears the wait: an event, so the drain resumes flowing, not awaitingText
    expect(h.counts().laneChunks).toBe(2);
    h.send({ type: 'CLIENT_DRAINED' });
    expect(streaming('flowing')).toBe(true);
    chunk();
    expect(h.counts().laneChunks).toBe(3);
    h.send({ type: 'CLIENT_BACKPRESSURE' });
    chunk(); // audio in flight still goes out while paused
    expect(h.counts().laneChunks).toBe(4);
    up.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    chunk(); // clears the wait: an event
    chunk();
    expect(h.counts().laneChunks).toBe(5);
    up.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    h.send({ type: 'CLIENT_DRAINED' });
    expect(streaming('awaitingText')).toBe(true);
    chunk(); // leaves awaitingText: an event again
    expect(h.counts().laneChunks).toBe(5);
    expect(streaming('flowing')).toBe(true);
    h.send({ type: 'STOP' });
    chunk();
    chunk();
    expect(h.counts().laneChunks).toBe(5);
    // Every chunk before the end went out once, in order; none after it.
    const audioFrames = h.frames.filter((f) => f.kind === 'audio');
    expect(audioFrames.map((f) => (f.kind === 'audio' ? f.seq : -1))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const end = h.frames.findIndex((f) => f.kind === 'message' && f.message.type === 'speak.end');
    expect(h.frames.slice(end).some((f) => f.kind === 'audio')).toBe(false);
    expect(h.ended[0]!.stats).toMatchObject({ chunks: 9, bytes: 9 * 960 });
  });

  it('STOP with the id of a queued utterance ends only that one; unknown ids are a no-op', () => {
    const h = started();
    speak(h, 'a');
    speak(h, 'b', { mode: 'enqueue' });
    h.send({ type: 'STOP', id: 'b' });
    h.send({ type: 'STOP', id: 'zzz' });
    h.send({ type: 'STOP', id: 'b' });
    const ends = h.messages().filter((m) => m.type === 'speak.end');
    expect(ends).toEqual([expect.objectContaining({ id: 'b', reason: 'stopped' })]);
    expect(h.speakerIn({ active: 'live' })).toBe(true);
  });

  it('a new interrupt supersedes the playing and queued utterances', () => {
    const h = started();
    speak(h, 'a');
    speak(h, 'b', { mode: 'enqueue' });
    audio(h);
    speak(h, 'c');
    const msgs = h.messages().map((m) => (m.type === 'speak.end' ? `${m.id}:${m.reason}` : m.type === 'speak.accepted' ? `+${m.id}` : m.type));
    expect(msgs.slice(-3)).toEqual(['a:superseded', 'b:superseded', '+c']);
  });

  it('ignores audio of a stale stream in every streaming state, including while paused', () => {
    const h = started();
    speak(h, 'a');
    h.liveUpstream()!.sendBack({ type: 'UPSTREAM_DONE', stream: 1 });
    h.liveUpstream()!.sendBack({ type: 'UPSTREAM_RELEASED', stream: 1 });
    speak(h, 'b');
    audio(h); // connecting -> streaming
    audio(h, 1, 1); // flowing
    h.send({ type: 'CLIENT_BACKPRESSURE' });
    expect(h.speakerIn({ active: { live: { streaming: 'paused' } } })).toBe(true);
    audio(h, 1, 1); // paused
    h.liveUpstream()!.sendBack({ type: 'UPSTREAM_DONE', stream: 1 });
    const audioFrames = h.frames.filter((f) => f.kind === 'audio');
    expect(audioFrames.every((f) => f.kind === 'audio' && f.marker === f.stream && f.stream === 2)).toBe(true);
    expect(h.speakerIn({ active: { live: { streaming: 'paused' } } })).toBe(true);
  });

  it('pauses the upstream under backpressure, resumes on drain, and cuts off a client that stays stalled', () => {
    const h = started();
    speak(h, 'a');
    audio(h);
    h.send({ type: 'CLIENT_BACKPRESSURE' });
    expect(h.counts().liveWatchers).toBe(1);
    h.send({ type: 'CLIENT_DRAINED' });
    expect(h.counts().liveWatchers).toBe(0);
    expect(h.liveUpstream()!.commands).toEqual(['PAUSE', 'RESUME']);
    h.send({ type: 'CLIENT_BACKPRESSURE' });
    h.clock.increment(testLimits.writeStallTimeoutMs + 1);
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.messages().at(-1)).toMatchObject({ type: 'speak.end', reason: 'failed', error: { code: 'client_stalled' } });
    expect(h.frames.at(-1)).toEqual({ kind: 'close', code: 1008 });
    expect(h.counts()).toMatchObject({ liveUpstreams: 0, liveWatchers: 0, pendingTimers: 0 });
  });

  it('ends with timeout codes when the upstream never answers or stalls mid-stream', () => {
    const h = started();
    speak(h, 'a');
    h.clock.increment(testLimits.firstAudioTimeoutMs + 1);
    expect(h.messages().at(-1)).toMatchObject({ id: 'a', reason: 'timeout', error: { code: 'first_audio_timeout' } });
    h.clock.increment(testLimits.releaseTimeoutMs + 1); // upstream hangs: release wait is bounded
    expect(h.speakerIn('idle')).toBe(true);
    speak(h, 'b');
    audio(h);
    h.clock.increment(testLimits.chunkGapTimeoutMs + 1);
    expect(h.messages().at(-1)).toMatchObject({ id: 'b', reason: 'timeout', error: { code: 'upstream_stalled' } });
  });

  it('times a stall from the last chunk exactly, however many chunks came before, and restarts the gap clock after a pause', () => {
    const h = started();
    speak(h, 'a');
    const gap = testLimits.chunkGapTimeoutMs;
    // Chunks at uneven intervals, each well inside the gap: never a stall.
    for (const step of [10, gap - 1, 300, 1, gap - 5, 250]) {
      h.clock.increment(step);
      audio(h);
    }
    expect(h.messages().some((m) => m.type === 'speak.end')).toBe(false);
    h.clock.increment(gap - 1);
    expect(h.messages().some((m) => m.type === 'speak.end')).toBe(false);
    h.clock.increment(1);
    expect(h.messages().at(-1)).toMatchObject({ id: 'a', reason: 'timeout', error: { code: 'upstream_stalled' } });
    expect(h.ended.at(-1)!.stats.chunks).toBe(6);

    // A pause longer than the gap is not a stall: the clock starts again on drain.
    h.liveUpstream()?.sendBack({ type: 'UPSTREAM_RELEASED', stream: 1 });
    speak(h, 'b');
    audio(h, 2);
    h.send({ type: 'CLIENT_BACKPRESSURE' });
    h.clock.increment(gap * 2);
    h.send({ type: 'CLIENT_DRAINED' });
    h.clock.increment(gap - 1);
    expect(h.messages().at(-1)).not.toMatchObject({ type: 'speak.end', id: 'b' });
    h.clock.increment(1);
    expect(h.messages().at(-1)).toMatchObject({ id: 'b', reason: 'timeout', error: { code: 'upstream_stalled' } });
    expect(h.ended.at(-1)!.stats).toMatchObject({ chunks: 1 });
  });

  it('forwards incremental text to the running upstream and waits for more within textIdle', () => {
    const h = started();
    speak(h, 'a', { text: 'Hello', final: false });
    const up = h.liveUpstream()!;
    expect(up.input).toMatchObject({ text: 'Hello', final: false });
    up.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    h.clock.increment(testLimits.textIdleTimeoutMs - 100);
    speak(h, 'a', { text: ' there.', final: false });
    h.clock.increment(testLimits.textIdleTimeoutMs - 100); // reset by the append
    expect(h.messages().some((m) => m.type === 'speak.end')).toBe(false);
    speak(h, 'a', { text: ' Bye.', final: true });
    // Each wait past textQuietMs also asked the upstream to speak the text it held (FLUSH).
    expect(up.commands).toEqual(['FLUSH', 'TEXT', 'FLUSH', 'TEXT']);
    speak(h, 'a', { text: 'more' });
    expect(h.messages().at(-1)).toMatchObject({ type: 'error', code: 'duplicate_id', id: 'a' });
  });

  it('rejects bad speak frames with typed errors and keeps the playing utterance', () => {
    const h = started();
    speak(h, 'a');
    audio(h);
    speak(h, 'big', { text: 'x'.repeat(testLimits.maxTextChars + 1) });
    speak(h, 'v', { voice: 'klingon' });
    speak(h, 'a');
    for (let i = 0; i < testLimits.maxQueued + 1; i++) speak(h, `q${i}`, { mode: 'enqueue' });
    const errors = h.messages().filter((m) => m.type === 'error').map((m) => m.type === 'error' && m.code);
    expect(errors).toEqual(['text_too_long', 'unknown_voice', 'duplicate_id', 'queue_full']);
    expect(h.speakerIn({ active: { live: 'streaming' } })).toBe(true);
    expect(h.messages().filter((m) => m.type === 'speak.end')).toEqual([]);
  });

  it('shutdown ends every utterance once with shutting_down and closes with 1001', () => {
    const h = started();
    speak(h, 'a');
    speak(h, 'b', { mode: 'enqueue' });
    h.send({ type: 'SHUTDOWN' });
    const ends = h.messages().filter((m) => m.type === 'speak.end');
    expect(ends.map((m) => m.type === 'speak.end' && [m.id, m.reason, m.error?.code])).toEqual([
      ['a', 'failed', 'shutting_down'],
      ['b', 'failed', 'shutting_down'],
    ]);
    expect(h.frames.at(-1)).toEqual({ kind: 'close', code: 1001 });
    expect(h.counts()).toMatchObject({ liveUpstreams: 0, pendingTimers: 0 });
  });
});
