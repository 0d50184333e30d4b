// decide() runs once per speak frame: the speaker's guards pick the frame's transition and its
// action carries the verdict out, but the verdict is drawn once (issue 16). Counted by wrapping
// the one function that draws it.
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ConnectionEvent } from '../../machines/types.js';
import { classifySpeak } from '../../machines/utterances.js';
import { createHarness } from '../support/machineHarness.js';

vi.mock('../../machines/utterances.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../machines/utterances.js')>();
  return { ...original, classifySpeak: vi.fn(original.classifySpeak) };
});

const decisions = vi.mocked(classifySpeak);

type Mode = 'interrupt' | 'enqueue';
const speakFrame = (id: string, text: string, final: boolean, mode: Mode, voice?: string): ConnectionEvent => ({
  type: 'SPEAK',
  request: { id, text, final, mode, ...(voice ? { voice } : {}) },
});

describe('a speak frame', () => {
  beforeEach(() => {
    decisions.mockClear();
  });

  it('is decided once on every path through the speaker (accept, queue, append, refuse, interrupt)', () => {
    const h = createHarness();
    h.send({ type: 'START', sampleRate: 24_000 });
    let frames = 0;
    const speak = (event: ConnectionEvent) => {
      h.send(event);
      frames++;
      expect(decisions, `after frame ${frames}`).toHaveBeenCalledTimes(frames);
    };

    speak(speakFrame('a', 'Hello', false, 'interrupt')); // idle: accepted, starts
    expect(h.speakerIn({ active: 'live' })).toBe(true);
    speak(speakFrame('b', 'Then', false, 'enqueue')); // live: queued
    speak(speakFrame('b', ' this.', true, 'enqueue')); // live: appended to the queued one
    h.liveUpstream()!.sendBack({ type: 'UPSTREAM_AWAITING_TEXT', stream: 1 });
    expect(h.speakerIn({ active: { live: { connecting: 'awaitingText' } } })).toBe(true);
    speak(speakFrame('a', ' there', false, 'interrupt')); // awaitingText: appended to the current one
    expect(h.liveUpstream()!.commands).toContain('TEXT');
    speak(speakFrame('x', 'Hi.', true, 'enqueue', 'nobody')); // awaitingText, then live: refused
    speak(speakFrame('b', 'again', true, 'enqueue')); // refused: b's text is complete
    speak(speakFrame('c', 'Stop that.', true, 'interrupt')); // live: interrupts, `a` and `b` end
    expect(h.speakerIn({ active: 'stopping' })).toBe(true);
    speak(speakFrame('d', 'Later.', true, 'enqueue')); // stopping: queued behind c

    expect(h.messages().filter((m) => m.type === 'error')).toMatchObject([
      { code: 'unknown_voice', id: 'x' },
      { code: 'duplicate_id', id: 'b' },
    ]);
    expect(h.messages().filter((m) => m.type === 'speak.accepted').map((m) => 'id' in m && m.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(h.ended.map((e) => [e.id, e.reason])).toEqual([
      ['a', 'superseded'],
      ['b', 'superseded'],
    ]);
  });

  it('sent twice as the same object is decided afresh: the verdict does not outlive what it was drawn from', () => {
    const h = createHarness();
    h.send({ type: 'START', sampleRate: 24_000 });
    h.send(speakFrame('a', 'Hello', false, 'interrupt'));
    h.send({ type: 'STOP' }); // `a` ends with its text still open
    // An append that crossed the STOP is absorbed quietly, and its final frame closes the id
    // in place (no new context); the very same frame again is then a duplicate.
    const crossed = speakFrame('a', ' there.', true, 'interrupt');
    h.send(crossed);
    expect(h.messages().filter((m) => m.type === 'error')).toEqual([]);
    h.send(crossed);
    expect(h.messages().filter((m) => m.type === 'error')).toMatchObject([{ code: 'duplicate_id', id: 'a' }]);
    expect(decisions).toHaveBeenCalledTimes(3);
  });
});
