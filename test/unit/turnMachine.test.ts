// The turn chart alone: every way a turn ends, each exactly once, and who owns the model request.
import { describe, expect, it } from 'vitest';
import { heardPrefix, nonSpaceChars } from '../../machines/heardText.js';
import { createTurnHarness } from '../support/turnHarness.js';

describe('turn: a reply from words to its end', () => {
  it('words start a reply; its text is handed as it is written, closed when written, and the turn completes with everything heard', () => {
    const h = createTurnHarness({ voice: 'en-us' });
    h.says('t1', 'what time is it');
    expect(h.replies).toHaveLength(1);
    expect(h.reply.input).toMatchObject({ turn: 't1', transcript: 'what time is it' });
    expect(h.memory).toEqual([{ kind: 'user', turn: 't1', text: 'what time is it' }]);
    h.reply.send({ type: 'REPLY_DELTA', text: 'It is ' });
    h.reply.send({ type: 'REPLY_DELTA', text: 'noon.' });
    expect(h.messages.filter((m) => m.type === 'reply.text')).toEqual([
      { type: 'reply.text', turn: 't1', text: 'It is ' },
      { type: 'reply.text', turn: 't1', text: 'noon.' },
    ]);
    expect(h.orders[0]).toEqual({ type: 'REPLY_SPEAK', request: { id: 'reply:t1', text: 'It is ', final: false, mode: 'enqueue', voice: 'en-us' } });
    h.reply.send({ type: 'REPLY_DONE' });
    expect(h.handed('reply:t1')).toEqual({ text: 'It is noon.', final: true, frames: 3 });
    expect(h.reply.stopped).toBe(true); // the model's request is over with its state
    expect(h.turnEnds()).toEqual([]);
    h.utteranceEnded('t1', 'completed');
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'completed', heard: 'It is noon.' }]);
    expect(h.memory[1]).toEqual({ kind: 'heard', turn: 't1', heard: 'It is noon.', interrupted: false });
    expect(h.state()).toBe('"waiting"');
  });

  it('an empty final ends its turn `empty`; a failed recognition ends it `failed` with the error; neither asks the model', () => {
    const h = createTurnHarness();
    h.says('t1', '  ');
    h.started('t2');
    h.send({ type: 'USER_TURN_HEARD', turn: 't2', text: '', error: { code: 'recognizer_timeout', message: 'x' } });
    expect(h.turnEnds()).toEqual([
      { type: 'turn.end', turn: 't1', status: 'empty', heard: '' },
      { type: 'turn.end', turn: 't2', status: 'failed', heard: '', error: { code: 'recognizer_timeout', message: 'x' } },
    ]);
    expect(h.replies).toHaveLength(0);
    expect(h.memory).toEqual([]);
  });

  it('an empty reply completes at once with nothing handed to the speaker', () => {
    const h = createTurnHarness();
    h.says('t1', 'hello');
    h.reply.send({ type: 'REPLY_DONE' });
    expect(h.orders).toEqual([]);
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'completed', heard: '' }]);
  });

  it('a reply longer than the limit is cut there and closed; the model is stopped', () => {
    const h = createTurnHarness({ maxReplyChars: 10 });
    h.says('t1', 'talk');
    h.reply.send({ type: 'REPLY_DELTA', text: 'abcdef ' });
    h.reply.send({ type: 'REPLY_DELTA', text: 'ghijkl ' });
    h.reply.send({ type: 'REPLY_DELTA', text: 'more' });
    expect(h.handed('reply:t1')).toMatchObject({ text: 'abcdef ghi', final: true });
    expect(h.reply.stopped).toBe(true);
  });
});

describe('turn: a reply never starts over the user', () => {
  it('while the user speaks, the written text is held; an empty final (a cough) lets the held reply go on', () => {
    const h = createTurnHarness();
    h.says('t1', 'tell me');
    h.started('t2');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Sure, ' });
    h.reply.send({ type: 'REPLY_DELTA', text: 'here.' });
    expect(h.orders).toEqual([]);
    expect(h.messages.filter((m) => m.type === 'reply.text')).toHaveLength(2); // written, not spoken
    h.heard('t2', '');
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't2', status: 'empty', heard: '' }]);
    expect(h.handed('reply:t1')).toEqual({ text: 'Sure, here.', final: false, frames: 1 });
    h.reply.send({ type: 'REPLY_DONE' });
    h.utteranceEnded('t1', 'completed');
    expect(h.turnEnds().map((e) => [e.turn, e.status])).toEqual([['t2', 'empty'], ['t1', 'completed']]);
  });

  it('words before the reply began supersede it: its model is stopped, it never reaches the speaker, the new words are answered', () => {
    const h = createTurnHarness();
    h.says('t1', 'first question');
    const first = h.reply;
    h.started('t2');
    first.send({ type: 'REPLY_DELTA', text: 'An answer ' });
    h.heard('t2', 'second question');
    expect(first.stopped).toBe(true);
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'superseded', heard: '' }]);
    expect(h.replies).toHaveLength(2);
    expect(h.reply.input).toMatchObject({ turn: 't2', transcript: 'second question' });
    first.send({ type: 'REPLY_DELTA', text: 'late' }); // a stopped actor's text goes nowhere
    expect(h.handed('reply:t1').frames).toBe(0);
  });

  it('a reply whose model finished while the user spoke is handed whole and closed once the speech proves empty', () => {
    const h = createTurnHarness();
    h.says('t1', 'hi');
    h.started('t2');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Hello.' });
    h.reply.send({ type: 'REPLY_DONE' });
    expect(h.orders).toEqual([]);
    h.heard('t2', '');
    expect(h.handed('reply:t1')).toEqual({ text: 'Hello.', final: true, frames: 1 });
    expect(h.state()).toContain('finishing');
  });
});

describe('turn: a reply cut short', () => {
  it('barge-in: the speaker ends the reply interrupted; heard is the played prefix, whole words only, and the model is stopped', () => {
    const h = createTurnHarness();
    h.says('t1', 'count');
    h.reply.send({ type: 'REPLY_DELTA', text: 'One two three four ' });
    h.reply.send({ type: 'REPLY_DELTA', text: 'five.' });
    h.started('t2');
    h.utteranceEnded('t1', 'interrupted', nonSpaceChars('One two thr'));
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'interrupted', heard: 'One two' }]);
    expect(h.memory.at(-1)).toEqual({ kind: 'heard', turn: 't1', heard: 'One two', interrupted: true });
    expect(h.replies[0]!.stopped).toBe(true);
    h.heard('t2', 'stop counting');
    expect(h.reply.input.turn).toBe('t2');
  });

  it('words too short for barge-in still cut the reply: the speaker is told to interrupt, then the words are answered', () => {
    const h = createTurnHarness();
    h.says('t1', 'tell a story');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Once upon a time.' });
    h.reply.send({ type: 'REPLY_DONE' });
    h.says('t2', 'no');
    expect(h.orders.at(-1)).toEqual({ type: 'REPLY_INTERRUPT' });
    expect(h.replies).toHaveLength(1); // not before the reply's end
    h.utteranceEnded('t1', 'interrupted', 4);
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'interrupted', heard: 'Once' }]);
    expect(h.reply.input).toMatchObject({ turn: 't2', transcript: 'no' });
  });

  it('of two sets of words heard while the reply ends, the older is superseded and the newer answered', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Reply.' });
    h.says('t2', 'b');
    h.says('t3', 'c');
    h.utteranceEnded('t1', 'interrupted');
    expect(h.turnEnds().map((e) => [e.turn, e.status])).toEqual([['t2', 'superseded'], ['t1', 'interrupted']]);
    expect(h.reply.input.turn).toBe('t3');
  });

  it('STOP before the reply began ends it interrupted with nothing heard; STOP naming another utterance does not', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.send({ type: 'STOP', id: 'mine' });
    expect(h.turnEnds()).toEqual([]);
    h.send({ type: 'STOP' });
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'interrupted', heard: '' }]);
    expect(h.reply.stopped).toBe(true);
  });

  it('STOP while speaking: the speaker ends it `stopped` and the turn ends interrupted with what was heard', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Hello there friend.' });
    h.send({ type: 'STOP' });
    h.utteranceEnded('t1', 'stopped', 5);
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'interrupted', heard: 'Hello' }]);
  });
});

describe('turn: failures end the turn once, and the session goes on', () => {
  it('a model error before any text: failed with its code; the next turn works', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.reply.send({ type: 'REPLY_ERROR', error: { code: 'model_timeout', message: 'late' } });
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'failed', heard: '', error: { code: 'model_timeout', message: 'late' } }]);
    h.says('t2', 'b');
    h.reply.send({ type: 'REPLY_DELTA', text: 'ok' });
    h.reply.send({ type: 'REPLY_DONE' });
    h.utteranceEnded('t2', 'completed');
    expect(h.turnEnds().map((e) => e.status)).toEqual(['failed', 'completed']);
  });

  it('a model error mid-reply stops the utterance, and the turn fails with the model error once it ended', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Part one. ' });
    h.reply.send({ type: 'REPLY_ERROR', error: { code: 'model_failed', message: 'cut' } });
    expect(h.orders.at(-1)).toEqual({ type: 'REPLY_STOP', id: 'reply:t1' });
    expect(h.turnEnds()).toEqual([]);
    h.utteranceEnded('t1', 'stopped', 4);
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'failed', heard: 'Part', error: { code: 'model_failed', message: 'cut' } }]);
  });

  it('the speaker failing the reply fails the turn with the speaker\'s error', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Hi.' });
    h.utteranceEnded('t1', 'failed', 0, { code: 'provider_unavailable', message: 'down' });
    expect(h.turnEnds()).toEqual([{ type: 'turn.end', turn: 't1', status: 'failed', heard: '', error: { code: 'provider_unavailable', message: 'down' } }]);
    expect(h.reply.stopped).toBe(true);
  });

  it('a lost utterance end cannot hang the turn: after the deadline it fails `internal`', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Hi.' });
    h.says('t2', 'b');
    h.clock.increment(14_999);
    expect(h.turnEnds()).toEqual([]);
    h.clock.increment(1);
    expect(h.turnEnds()[0]).toMatchObject({ turn: 't1', status: 'failed', error: { code: 'internal' } });
    expect(h.reply.input.turn).toBe('t2');
  });

  it('shutdown: the user turn being heard and a reply not yet handed fail `shutting_down` at once; a later final is ignored; nothing new starts', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.started('t2');
    h.send({ type: 'SHUTDOWN' });
    const shuttingDown = expect.objectContaining({ code: 'shutting_down' });
    expect(h.turnEnds()).toEqual([
      { type: 'turn.end', turn: 't2', status: 'failed', heard: '', error: shuttingDown },
      { type: 'turn.end', turn: 't1', status: 'failed', heard: '', error: shuttingDown },
    ]);
    h.heard('t2', 'more words'); // the listener's final for t2, after the fact
    h.says('t3', 'b'); // (a listener stops at shutdown; were one to go on, its turns still end once)
    expect(h.turnEnds().map((e) => [e.turn, e.status])).toEqual([['t2', 'failed'], ['t1', 'failed'], ['t3', 'failed']]);
    expect(h.replies).toHaveLength(1);
    expect(h.reply.stopped).toBe(true);
  });

  it('shutdown while speaking: words heard meanwhile end at once (nothing is answered), the reply with the speaker\'s end', () => {
    const h = createTurnHarness();
    h.says('t1', 'a');
    h.reply.send({ type: 'REPLY_DELTA', text: 'Hi there.' });
    h.send({ type: 'SHUTDOWN' });
    h.says('t2', 'b');
    h.utteranceEnded('t1', 'failed', 0, { code: 'shutting_down', message: 'bye' });
    expect(h.turnEnds().map((e) => [e.turn, e.status])).toEqual([['t2', 'failed'], ['t1', 'failed']]);
    expect(h.orders.some((o) => o.type === 'REPLY_INTERRUPT')).toBe(false);
    expect(h.replies).toHaveLength(1);
    expect(h.state()).toBe('"closed"');
  });
});

describe('heard text', () => {
  it('counts non-space characters and maps a count back to a prefix of whole words', () => {
    expect(nonSpaceChars(' a b\nc ')).toBe(3);
    expect(heardPrefix('One two three', 0)).toBe('');
    expect(heardPrefix('One two three', 2)).toBe('');
    expect(heardPrefix('One two three', 3)).toBe('One');
    expect(heardPrefix('One two three', 4)).toBe('One');
    expect(heardPrefix('One  two three', 6)).toBe('One  two');
    expect(heardPrefix('One two three', 11)).toBe('One two three');
    expect(heardPrefix('One two three', 99)).toBe('One two three');
  });
});
