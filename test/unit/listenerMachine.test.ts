// The listener chart alone, on its media clock: every transition and every timer exactly.
import { describe, expect, it } from 'vitest';
import { machineTables } from '../../src/observability/statechartDoc.js';
import { listenerMachine } from '../../machines/listener.machine.js';
import { createListenerHarness } from '../support/listenerHarness.js';

describe('listener: turns from voice activity', () => {
  it('speech of 240 ms starts no turn; its job is started at the onset and cancelled', () => {
    const h = createListenerHarness();
    h.silence(100);
    h.speech(240);
    h.silence(1_000);
    expect(h.reports).toEqual([]);
    expect(h.jobs).toHaveLength(1);
    expect(h.jobs[0]!.input.onsetMs).toBe(100);
    expect(h.jobs[0]!.cleanedUp).toBe(true);
    expect(h.in('quiet')).toBe(true);
    expect(h.clock.pending).toBe(0);
  });

  it('speech reaching 250 ms starts a turn at its onset, with id t1', () => {
    const h = createListenerHarness();
    h.silence(100);
    h.speech(240);
    expect(h.reports).toEqual([]);
    h.speech(10);
    expect(h.reports).toEqual([{ type: 'input.speech_started', turn: 't1', audioMs: 100 }]);
    expect(h.in({ turn: { speaking: 'voiced' } })).toBe(true);
  });

  it('the minimum speech is exact with 20 ms frames too (240 no, 260 yes)', () => {
    const h = createListenerHarness();
    h.speech(240, { frameMs: 20 });
    h.silence(200, { frameMs: 20 });
    expect(h.reports).toEqual([]);
    h.speech(260, { frameMs: 20 });
    expect(h.types()).toEqual(['input.speech_started']);
  });

  it('a short gap (under onsetGapMs) before the turn is confirmed is tolerated; a longer one drops the candidate', () => {
    const h = createListenerHarness();
    h.speech(100);
    h.silence(140);
    h.speech(20); // the candidate spans 260 ms from its onset: a turn
    expect(h.reports).toEqual([{ type: 'input.speech_started', turn: 't1', audioMs: 0 }]);

    const g = createListenerHarness();
    g.speech(100);
    g.silence(160);
    g.speech(100);
    expect(g.reports).toEqual([]);
    expect(g.jobs).toHaveLength(2); // the second onset is a new candidate
    expect(g.jobs[0]!.cleanedUp).toBe(true);
    expect(g.jobs[1]!.input.onsetMs).toBe(260);
  });

  it('endpointing at exactly endpointSilenceMs: speech_stopped where the silence began, FINISH to the job', () => {
    const h = createListenerHarness();
    h.silence(50);
    h.speech(500);
    h.silence(690);
    expect(h.types()).toEqual(['input.speech_started']);
    h.silence(10);
    expect(h.reports.at(-1)).toEqual({ type: 'input.speech_stopped', turn: 't1', audioMs: 550 });
    expect(h.liveJob()!.commands).toEqual(['FINISH']);
    expect(h.in({ turn: 'finalizing' })).toBe(true);
  });

  it('speech resuming before the endpoint keeps the turn going', () => {
    const h = createListenerHarness();
    h.speech(300);
    h.silence(600);
    h.speech(300);
    h.silence(700);
    expect(h.reports.slice(-1)).toEqual([{ type: 'input.speech_stopped', turn: 't1', audioMs: 1_200 }]);
  });

  it('the final transcript ends the turn; the next turn is t2', () => {
    const h = createListenerHarness();
    h.speech(300);
    h.silence(700);
    h.liveJob()!.sendBack({ type: 'RECOGNITION_FINAL', text: 'what time is it' });
    expect(h.reports.at(-1)).toEqual({ type: 'transcript', turn: 't1', text: 'what time is it', final: true });
    expect(h.in('quiet')).toBe(true);
    expect(h.jobs[0]!.cleanedUp).toBe(true);
    h.speech(300);
    expect(h.reports.at(-1)).toEqual({ type: 'input.speech_started', turn: 't2', audioMs: 1_000 });
  });

  it('partials go out only once the turn started, and only when the text changed', () => {
    const h = createListenerHarness();
    h.speech(100);
    h.liveJob()!.sendBack({ type: 'RECOGNITION_PARTIAL', text: 'wh' });
    h.speech(200);
    const job = h.liveJob()!;
    job.sendBack({ type: 'RECOGNITION_PARTIAL', text: 'what' });
    job.sendBack({ type: 'RECOGNITION_PARTIAL', text: 'what' });
    job.sendBack({ type: 'RECOGNITION_PARTIAL', text: 'what time' });
    h.silence(700);
    job.sendBack({ type: 'RECOGNITION_PARTIAL', text: 'what time is' });
    job.sendBack({ type: 'RECOGNITION_FINAL', text: 'what time is it' });
    job.sendBack({ type: 'RECOGNITION_PARTIAL', text: 'late' });
    expect(h.reports).toEqual([
      { type: 'input.speech_started', turn: 't1', audioMs: 0 },
      { type: 'transcript', turn: 't1', text: 'what', final: false },
      { type: 'transcript', turn: 't1', text: 'what time', final: false },
      { type: 'input.speech_stopped', turn: 't1', audioMs: 300 },
      { type: 'transcript', turn: 't1', text: 'what time is', final: false },
      { type: 'transcript', turn: 't1', text: 'what time is it', final: true },
    ]);
  });

  it('maxTurnMs ends the speech at that point from the onset', () => {
    const h = createListenerHarness({ maxTurnMs: 2_000 });
    h.silence(30);
    h.speech(3_000);
    expect(h.types()).toEqual(['input.speech_started', 'input.speech_stopped']);
    expect(h.reports[1]).toEqual({ type: 'input.speech_stopped', turn: 't1', audioMs: 2_030 });
    expect(h.jobs[0]!.commands).toEqual(['FINISH']);
  });
});

describe('listener: recognition results, errors and deadlines', () => {
  it('an error while finalizing: the error, then an empty final', () => {
    const h = createListenerHarness();
    h.speech(300);
    h.silence(700);
    h.liveJob()!.sendBack({ type: 'RECOGNITION_ERROR', code: 'recognizer_busy', message: 'busy' });
    expect(h.reports.slice(-2)).toEqual([
      { type: 'error', code: 'recognizer_busy', message: 'busy' },
      { type: 'transcript', turn: 't1', text: '', final: true },
    ]);
    expect(h.in('quiet')).toBe(true);
  });

  it('an error during the speech: the turn runs to its endpoint, then the error and an empty final', () => {
    const h = createListenerHarness();
    h.speech(300);
    h.liveJob()!.sendBack({ type: 'RECOGNITION_ERROR', code: 'recognizer_failed', message: 'failed' });
    h.speech(200);
    expect(h.types()).toEqual(['input.speech_started']);
    h.silence(700);
    expect(h.reports.slice(1)).toEqual([
      { type: 'input.speech_stopped', turn: 't1', audioMs: 500 },
      { type: 'error', code: 'recognizer_failed', message: 'failed' },
      { type: 'transcript', turn: 't1', text: '', final: true },
    ]);
  });

  it('no result within recognitionResultMs of input audio: recognizer_timeout and an empty final', () => {
    const h = createListenerHarness({ recognitionResultMs: 1_000 });
    h.speech(300);
    h.silence(700);
    h.silence(990);
    expect(h.in({ turn: 'finalizing' })).toBe(true);
    h.silence(10);
    expect(h.reports.slice(-2)).toEqual([
      expect.objectContaining({ type: 'error', code: 'recognizer_timeout' }),
      { type: 'transcript', turn: 't1', text: '', final: true },
    ]);
    // A result after the deadline is dropped (its job was cancelled).
    expect(h.jobs[0]!.cleanedUp).toBe(true);
  });

  it('a crashed recognition actor counts as recognizer_failed', () => {
    const h = createListenerHarness();
    h.speech(300);
    h.send({ type: 'xstate.error.actor.recognition', error: new Error('boom') } as never);
    h.silence(700);
    expect(h.reports.slice(-2)).toEqual([
      expect.objectContaining({ type: 'error', code: 'recognizer_failed' }),
      { type: 'transcript', turn: 't1', text: '', final: true },
    ]);
  });
});

describe('listener: input.commit', () => {
  it('in a turn: the speech ends now', () => {
    const h = createListenerHarness();
    h.speech(400);
    h.send({ type: 'COMMIT' });
    expect(h.reports.at(-1)).toEqual({ type: 'input.speech_stopped', turn: 't1', audioMs: 400 });
    expect(h.liveJob()!.commands).toEqual(['FINISH']);
  });

  it('after a silence began: the speech ended where the silence began', () => {
    const h = createListenerHarness();
    h.speech(400);
    h.silence(200);
    h.send({ type: 'COMMIT' });
    expect(h.reports.at(-1)).toEqual({ type: 'input.speech_stopped', turn: 't1', audioMs: 400 });
  });

  it('push to talk: a committed short word (under minSpeechMs) is still a turn', () => {
    const h = createListenerHarness();
    h.silence(20);
    h.speech(120);
    h.send({ type: 'COMMIT' });
    expect(h.reports).toEqual([
      { type: 'input.speech_started', turn: 't1', audioMs: 20 },
      { type: 'input.speech_stopped', turn: 't1', audioMs: 140 },
    ]);
    h.liveJob()!.sendBack({ type: 'RECOGNITION_FINAL', text: 'yes' });
    expect(h.reports.at(-1)).toEqual({ type: 'transcript', turn: 't1', text: 'yes', final: true });
  });

  it('with nothing heard, or while finalizing, it does nothing', () => {
    const h = createListenerHarness();
    h.send({ type: 'COMMIT' });
    h.silence(100);
    expect(h.reports).toEqual([]);
    h.speech(300);
    h.silence(700);
    h.send({ type: 'COMMIT' });
    expect(h.types()).toEqual(['input.speech_started', 'input.speech_stopped']);
  });
});

describe('listener: barge-in and the echo guard', () => {
  it('while the assistant is audible, speech past interruptSpeechMs + echoGuardExtraMs raises BARGE_IN once', () => {
    const h = createListenerHarness();
    h.send({ type: 'ASSISTANT_AUDIBLE', audible: true });
    h.speech(590);
    expect(h.types()).toEqual(['input.speech_started']);
    h.speech(10);
    expect(h.reports.at(-1)).toEqual({ type: 'BARGE_IN', turn: 't1' });
    h.speech(2_000);
    expect(h.types().filter((t) => t === 'BARGE_IN')).toHaveLength(1);
  });

  it('speech shorter than the threshold interrupts nothing', () => {
    const h = createListenerHarness();
    h.send({ type: 'ASSISTANT_AUDIBLE', audible: true });
    h.speech(550);
    h.silence(2_000);
    expect(h.types()).not.toContain('BARGE_IN');
  });

  it('with no echo guard (extra 0) the threshold is interruptSpeechMs', () => {
    const h = createListenerHarness({ echoGuardExtraMs: 0 });
    h.send({ type: 'ASSISTANT_AUDIBLE', audible: true });
    h.speech(390);
    expect(h.types()).not.toContain('BARGE_IN');
    h.speech(10);
    expect(h.types()).toContain('BARGE_IN');
  });

  it('the echo guard: while audible, quiet frames are not speech', () => {
    const h = createListenerHarness();
    h.send({ type: 'ASSISTANT_AUDIBLE', audible: true });
    h.speech(2_000, { levelDb: -35 });
    expect(h.reports).toEqual([]);
    expect(h.jobs).toHaveLength(0);
    h.speech(300, { levelDb: -30 });
    expect(h.types()).toEqual(['input.speech_started']);
  });

  it('the same quiet speech makes a turn when the assistant is silent, and never interrupts', () => {
    const h = createListenerHarness();
    h.speech(2_000, { levelDb: -45 });
    expect(h.types()).toEqual(['input.speech_started']);
  });

  it('the assistant becoming audible mid-speech: barge-in once the threshold has passed', () => {
    const h = createListenerHarness();
    h.speech(1_000);
    expect(h.types()).toEqual(['input.speech_started']);
    h.send({ type: 'ASSISTANT_AUDIBLE', audible: true });
    h.speech(10);
    expect(h.types()).toEqual(['input.speech_started', 'BARGE_IN']);
  });

  it('no barge-in when the session turned interruptions off, or while the assistant is silent', () => {
    const off = createListenerHarness({}, { interruptions: false });
    off.send({ type: 'ASSISTANT_AUDIBLE', audible: true });
    off.speech(2_000);
    expect(off.types()).toEqual(['input.speech_started']);
    const silent = createListenerHarness();
    silent.speech(2_000);
    expect(silent.types()).toEqual(['input.speech_started']);
  });

  it('speech with a pause: barge-in when the voice comes back after the threshold', () => {
    const h = createListenerHarness();
    h.send({ type: 'ASSISTANT_AUDIBLE', audible: true });
    h.speech(500);
    h.silence(300);
    expect(h.types()).toEqual(['input.speech_started']);
    h.speech(10);
    expect(h.types()).toEqual(['input.speech_started', 'BARGE_IN']);
  });
});

describe('listener: shutdown', () => {
  it('a turn in progress gets speech_stopped and its final (the text so far), then the listener is done', () => {
    const h = createListenerHarness();
    h.speech(400);
    h.liveJob()!.sendBack({ type: 'RECOGNITION_PARTIAL', text: 'hello' });
    h.send({ type: 'SHUTDOWN' });
    expect(h.reports.slice(1)).toEqual([
      { type: 'transcript', turn: 't1', text: 'hello', final: false },
      { type: 'input.speech_stopped', turn: 't1', audioMs: 400 },
      { type: 'transcript', turn: 't1', text: 'hello', final: true },
    ]);
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(h.jobs[0]!.cleanedUp).toBe(true);
    expect(h.clock.pending).toBe(0);
  });

  it('while finalizing: only the final; in a candidate or quiet: nothing', () => {
    const h = createListenerHarness();
    h.speech(300);
    h.silence(700);
    h.send({ type: 'SHUTDOWN' });
    expect(h.types()).toEqual(['input.speech_started', 'input.speech_stopped', 'transcript']);
    const c = createListenerHarness();
    c.speech(100);
    c.send({ type: 'SHUTDOWN' });
    expect(c.reports).toEqual([]);
    expect(c.jobs[0]!.cleanedUp).toBe(true);
  });

  it('names every action, no inline assign', () => {
    const tables = machineTables(listenerMachine);
    expect(tables).not.toMatch(/\bassign\b|\binline\b/);
    for (const name of ['announceSpeechStarted', 'announceSpeechStopped', 'announceFinal(recognized)', 'announceError(recognizer_timeout)', 'raiseBargeIn', 'finishRecognition']) {
      expect(tables).toContain(name);
    }
  });
});
