// The conversation the model sees: bounded by turns and characters (oldest whole turns first),
// only what the user heard of each reply, interrupted replies marked, instructions first.
import { describe, expect, it } from 'vitest';
import { Conversation, interruptedNote } from '../../src/agent/conversation.js';

describe('Conversation', () => {
  it('puts the instructions first, then the turns in order', () => {
    const c = new Conversation();
    c.userSaid('t1', 'what time is it');
    c.assistantHeard('t1', 'It is three.', false);
    c.userSaid('t2', 'thanks');
    expect(c.messages('Be brief.')).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'what time is it' },
      { role: 'assistant', content: 'It is three.' },
      { role: 'user', content: 'thanks' },
    ]);
    expect(c.messages()[0]).toEqual({ role: 'user', content: 'what time is it' });
    expect(c.messages('   ')[0]!.role).toBe('user');
  });

  it('keeps only what the user heard, marked when they interrupted it', () => {
    const c = new Conversation();
    c.userSaid('t1', 'tell me a story');
    c.assistantHeard('t1', 'Once upon a time there', true);
    expect(c.messages().at(-1)).toEqual({ role: 'assistant', content: `Once upon a time there${interruptedNote}` });
    expect(interruptedNote).toBe('… [interrupted by the user]');
    // A later report for the same turn replaces the first.
    c.assistantHeard('t1', 'Once upon a time there was', false);
    expect(c.messages().at(-1)).toEqual({ role: 'assistant', content: 'Once upon a time there was' });
  });

  it('leaves no assistant message when nothing was heard, and joins the user messages that then meet', () => {
    const c = new Conversation();
    c.userSaid('t1', 'hello');
    c.assistantHeard('t1', '', true);
    c.userSaid('t2', 'are you there');
    expect(c.messages('sys')).toEqual([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'hello\nare you there' },
    ]);
  });

  it('ignores empty user turns and replies to turns it does not hold', () => {
    const c = new Conversation();
    c.userSaid('t1', '   ');
    c.assistantHeard('t1', 'orphan reply', false);
    c.assistantHeard('nope', 'orphan', false);
    expect(c.size).toBe(0);
    expect(c.messages('sys')).toEqual([{ role: 'system', content: 'sys' }]);
  });

  it('keeps at most maxTurns turns, dropping the oldest whole turns', () => {
    const c = new Conversation({ maxTurns: 3 });
    for (let i = 1; i <= 5; i++) {
      c.userSaid(`t${i}`, `question ${i}`);
      c.assistantHeard(`t${i}`, `answer ${i}`, false);
    }
    expect(c.size).toBe(3);
    const messages = c.messages('instructions');
    expect(messages[0]).toEqual({ role: 'system', content: 'instructions' });
    expect(messages.slice(1).map((m) => m.content)).toEqual(['question 3', 'answer 3', 'question 4', 'answer 4', 'question 5', 'answer 5']);
    // A reply to a dropped turn does not come back.
    c.assistantHeard('t1', 'late', false);
    expect(c.messages().map((m) => m.content)).not.toContain('late');
  });

  it('keeps at most maxChars characters of history, oldest first, but always the newest turn and the instructions', () => {
    const c = new Conversation({ maxChars: 50, maxTextChars: 40 });
    c.userSaid('t1', 'a'.repeat(20));
    c.assistantHeard('t1', 'b'.repeat(20), false);
    c.userSaid('t2', 'c'.repeat(20));
    c.assistantHeard('t2', 'd'.repeat(20), false);
    const history = c.messages('x'.repeat(500)).slice(1);
    expect(history.map((m) => m.content)).toEqual(['c'.repeat(20), 'd'.repeat(20)]);
    // One turn alone over the budget is still kept (capped per text): the newest turn must be sent.
    c.userSaid('t3', 'e'.repeat(100));
    expect(c.messages().map((m) => m.content)).toEqual(['e'.repeat(40)]);
    expect(c.messages('x'.repeat(500))[0]!.content).toHaveLength(500);
  });

  it('counts the interruption note against the character budget and caps the instructions', () => {
    const c = new Conversation({ maxChars: 30 + interruptedNote.length, maxInstructionChars: 10 });
    c.userSaid('t1', 'q'.repeat(10));
    c.assistantHeard('t1', 'h'.repeat(10), true);
    c.userSaid('t2', 'r'.repeat(10));
    expect(c.size).toBe(2);
    c.assistantHeard('t2', 'z', false);
    expect(c.size).toBe(1);
    expect(c.messages('i'.repeat(50))[0]!.content).toBe('i'.repeat(10));
  });

  it('clear() forgets every turn', () => {
    const c = new Conversation();
    c.userSaid('t1', 'hi');
    c.clear();
    expect(c.messages()).toEqual([]);
  });

  it('saved() and restore() carry a conversation to another gateway: same messages; damaged entries dropped; the bounds hold', () => {
    const c = new Conversation();
    c.userSaid('t1', 'What time is it?');
    c.assistantHeard('t1', 'It is noon', true);
    c.userSaid('t2', 'Thanks.');
    const moved = new Conversation();
    moved.restore(JSON.parse(JSON.stringify(c.saved())));
    expect(moved.messages('Be brief.')).toEqual(c.messages('Be brief.'));
    const damaged = new Conversation({ maxTurns: 2 });
    damaged.restore([{ id: 1, user: 'x' }, null, 'text', { id: 'a', user: 'one' }, { id: 'b', user: 'two' }, { id: 'c', user: 'three', heard: 'ok' }]);
    expect(damaged.messages()).toEqual([
      { role: 'user', content: 'two\nthree' },
      { role: 'assistant', content: 'ok' },
    ]);
    const none = new Conversation();
    none.restore({ not: 'an array' });
    expect(none.size).toBe(0);
  });
});
