// The embedded default model: repeats the last user message as word deltas, paced when asked,
// quiet and prompt on abort.
import { describe, expect, it } from 'vitest';
import { withDeadlines } from '../../src/agent/deadlines.js';
import { echoChatModel, words } from '../../src/agent/echoChatModel.js';
import type { ChatMessage } from '../../src/agent/types.js';

const messages: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'an older question' },
  { role: 'assistant', content: 'An older answer.' },
  { role: 'user', content: '  what time is it  ' },
];

async function collect(iterable: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const d of iterable) out.push(d);
  return out;
}

describe('echoChatModel', () => {
  it('answers the last user message as several word deltas that join to the reply', async () => {
    const deltas = await collect(echoChatModel().stream({ messages, signal: new AbortController().signal }));
    expect(deltas).toEqual(['You ', 'said: ', 'what ', 'time ', 'is ', 'it']);
    expect(deltas.join('')).toBe('You said: what time is it');
  });

  it('has a fallback when there is nothing to echo, and bounds the reply', async () => {
    const signal = new AbortController().signal;
    expect((await collect(echoChatModel().stream({ messages: [{ role: 'system', content: 's' }], signal }))).join('')).toBe('I did not catch that.');
    const long = await collect(echoChatModel({ maxChars: 20 }).stream({ messages: [{ role: 'user', content: 'word '.repeat(100) }], signal }));
    expect(long.join('').length).toBeLessThanOrEqual(20);
  });

  it('paces the words when asked, deterministically', async () => {
    const started = performance.now();
    const deltas = await collect(echoChatModel({ wordDelayMs: 20, prefix: '' }).stream({ messages: [{ role: 'user', content: 'one two three' }], signal: new AbortController().signal }));
    expect(deltas).toEqual(['one ', 'two ', 'three']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('ends quietly and at once when aborted mid-pause, also behind the deadlines', async () => {
    const controller = new AbortController();
    const model = withDeadlines(echoChatModel({ wordDelayMs: 1_000 }), { firstTokenMs: 5_000 });
    setTimeout(() => controller.abort(), 30);
    const started = performance.now();
    expect(await collect(model.stream({ messages, signal: controller.signal }))).toEqual([]);
    expect(performance.now() - started).toBeLessThan(200);
  });

  it('words() keeps every character', () => {
    for (const text of ['', 'a', ' a  b ', 'Hello, world!\nNew line.']) expect(words(text).join('')).toBe(text.match(/\s*\S[\s\S]*/)?.[0] ?? '');
  });
});
