// withDeadlines around models written here to misbehave (they implement the port; nothing is
// mocked): one that never answers and ignores its signal, one that stops half way. Each
// deadline ends the reply with model_timeout naming it, within a bounded release grace.
import { describe, expect, it } from 'vitest';
import { withDeadlines } from '../../src/agent/deadlines.js';
import { ChatModelError, type ChatModel } from '../../src/agent/types.js';

const never = new Promise<never>(() => {});
const deaf: ChatModel = {
  name: 'deaf',
  async *stream() {
    await never; // ignores its signal entirely
  },
};
let released = 0;
const halfway: ChatModel = {
  name: 'halfway',
  async *stream({ signal }) {
    try {
      yield 'Hello ';
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    } finally {
      released++;
    }
  },
};
const thrower: ChatModel = {
  name: 'thrower',
  async *stream() {
    yield 'a';
    throw new Error('secret internals');
  },
};

async function outcome(model: ChatModel, signal = new AbortController().signal) {
  const started = performance.now();
  const deltas: string[] = [];
  try {
    for await (const d of model.stream({ messages: [{ role: 'user', content: 'x' }], signal })) deltas.push(d);
    return { deltas, error: null as ChatModelError | null, ms: performance.now() - started };
  } catch (error) {
    return { deltas, error: error as ChatModelError, ms: performance.now() - started };
  }
}

describe('withDeadlines', () => {
  it('first-token deadline, even against a model that ignores its signal (bounded by the release grace)', async () => {
    const r = await outcome(withDeadlines(deaf, { firstTokenMs: 100, releaseGraceMs: 50 }));
    expect(r.error).toBeInstanceOf(ChatModelError);
    expect(r.error!.code).toBe('model_timeout');
    expect(r.error!.message).toBe('deaf sent no text within 100 ms');
    expect(r.ms).toBeLessThan(400);
  });

  it('between-token deadline: the model is aborted and releases before the error surfaces', async () => {
    released = 0;
    const r = await outcome(withDeadlines(halfway, { betweenTokensMs: 100 }));
    expect(r.deltas).toEqual(['Hello ']);
    expect(r.error!.code).toBe('model_timeout');
    expect(r.error!.message).toBe('halfway sent no more text for 100 ms');
    expect(released).toBe(1);
  });

  it('whole-reply deadline counts while the consumer holds a delta', async () => {
    const model = withDeadlines(halfway, { wholeReplyMs: 80, betweenTokensMs: 5_000 });
    const iterator = model.stream({ messages: [], signal: new AbortController().signal })[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ done: false, value: 'Hello ' });
    await new Promise((r) => setTimeout(r, 120));
    await expect(iterator.next()).rejects.toMatchObject({ code: 'model_timeout', message: 'halfway did not finish its reply within 80 ms' });
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
  });

  it('an outside abort ends a deaf model at once, without an error', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const r = await outcome(withDeadlines(deaf, { releaseGraceMs: 50 }), controller.signal);
    expect(r.error).toBeNull();
    expect(r.ms).toBeLessThan(200);
    // Already aborted: nothing starts.
    expect((await outcome(withDeadlines(deaf), controller.signal)).error).toBeNull();
  });

  it('an unexpected error becomes model_failed without its details', async () => {
    const r = await outcome(withDeadlines(thrower));
    expect(r.deltas).toEqual(['a']);
    expect(r.error!.code).toBe('model_failed');
    expect(r.error!.message).not.toContain('secret');
  });
});
