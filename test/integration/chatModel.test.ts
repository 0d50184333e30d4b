// The chat models against a real chat-completions emulator on 127.0.0.1, through the real
// openai and groq SDKs (baseURL only): streamed replies arrive as deltas, every upstream
// fault ends the reply exactly once with its typed code and leaves the next reply working,
// an abort is quiet and releases the HTTP request (seen from the emulator's side), and the
// deadlines of the port hold.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { withDeadlines } from '../../src/agent/deadlines.js';
import { groqChatModel, openAiChatModel } from '../../src/agent/openAiChatModel.js';
import { ChatModelError, type ChatMessage, type ChatModel } from '../../src/agent/types.js';
import { ChatEmulator, type ChatFault } from '../../src/emulators/chatEmulator.js';

const key = 'test-key-7f3a';
let emulator: ChatEmulator;

beforeAll(async () => {
  emulator = new ChatEmulator({ apiKey: key });
  await emulator.listen();
});
afterAll(async () => {
  await emulator.close();
});
beforeEach(async () => {
  // Each test starts from a quiet emulator: no leftover faults, replies or open requests.
  emulator.faults.clear();
  emulator.replyWith(null);
  emulator.configure({ firstTokenDelayMs: 0, tokenDelayMs: 0, slowFirstTokenMs: 30_000, retryAfterSeconds: 1 });
  expect(await emulator.idle()).toBe(true);
});

const sdks = {
  openai: (apiKey = key) => openAiChatModel({ apiKey, baseURL: `${emulator.url}/v1`, model: 'llama3.2', maxTokens: 200 }),
  groq: (apiKey = key) => groqChatModel({ apiKey, baseURL: emulator.url, model: 'llama-3.1-8b-instant', maxTokens: 200 }),
} satisfies Record<string, (apiKey?: string) => ChatModel>;
const limits = { firstTokenMs: 400, betweenTokensMs: 400, wholeReplyMs: 5_000 };
const ask = (content: string): ChatMessage[] => [
  { role: 'system', content: 'Answer briefly.' },
  { role: 'user', content },
];

interface Outcome {
  deltas: string[];
  error: unknown;
  errors: number;
  ms: number;
}

/** Read a whole reply; count how often it failed (must be at most once) and whether anything followed the failure. */
async function read(model: ChatModel, messages: ChatMessage[], signal = new AbortController().signal): Promise<Outcome> {
  const started = performance.now();
  const iterator = model.stream({ messages, signal })[Symbol.asyncIterator]();
  const deltas: string[] = [];
  let error: unknown;
  let errors = 0;
  for (;;) {
    try {
      const step = await iterator.next();
      if (step.done) break;
      deltas.push(step.value);
    } catch (e) {
      error = e;
      errors++;
      // After the failure the iteration is over: asking again gives nothing more, no second error.
      const after = await iterator.next().catch(() => 'threw again');
      expect(after).toEqual({ done: true, value: undefined });
      break;
    }
  }
  return { deltas, error, errors, ms: performance.now() - started };
}

describe.each(Object.keys(sdks) as Array<keyof typeof sdks>)('chat model through the %s SDK', (sdk) => {
  const model = () => withDeadlines(sdks[sdk](), limits);
  const path = sdk === 'openai' ? '/v1/chat/completions' : '/openai/v1/chat/completions';

  it('streams a reply as several deltas that join to the text', async () => {
    emulator.configure({ tokenDelayMs: 2 });
    emulator.reply('It is half past three in the afternoon.');
    const { deltas, errors } = await read(model(), ask('What time is it?'));
    expect(errors).toBe(0);
    expect(deltas.length).toBeGreaterThan(3);
    expect(deltas.every((d) => d.length > 0)).toBe(true);
    expect(deltas.join('')).toBe('It is half past three in the afternoon.');
    const request = emulator.requests.at(-1)!;
    expect(request).toMatchObject({ path, stream: true, maxTokens: 200, outcome: 'completed' });
    expect(request.messages).toEqual(ask('What time is it?'));
  });

  it('by default the emulator echoes the last user message; max tokens cut the reply (finish_reason length) without an error', async () => {
    const short = withDeadlines(sdk === 'openai'
      ? openAiChatModel({ apiKey: key, baseURL: `${emulator.url}/v1`, model: 'm', maxTokens: 3 })
      : groqChatModel({ apiKey: key, baseURL: emulator.url, maxTokens: 3 }), limits);
    const { deltas, errors } = await read(short, ask('one two three four five'));
    expect(errors).toBe(0);
    expect(deltas.join('')).toBe('one two three');
    expect(emulator.requests.at(-1)!.maxTokens).toBe(3);
  });

  const faults: Array<{ fault: ChatFault; code: string; message: RegExp }> = [
    { fault: 'slow_first_token', code: 'model_timeout', message: /no text within 400 ms/ },
    { fault: 'stall_mid_stream', code: 'model_timeout', message: /no more text for 400 ms/ },
    { fault: 'rate_limited', code: 'model_busy', message: /rate limit/ },
    { fault: 'server_error', code: 'model_failed', message: /HTTP 500/ },
    { fault: 'cut_stream', code: 'model_failed', message: /broke off/ },
    { fault: 'malformed_chunk', code: 'model_failed', message: /malformed/ },
    { fault: 'truncated', code: 'model_failed', message: /before it was complete/ },
    { fault: 'unauthorized', code: 'model_unavailable', message: /credentials/ },
  ];
  for (const { fault, code, message } of faults) {
    it(`${fault}: the reply ends once with ${code}, and the next reply works`, async () => {
      emulator.configure({ tokenDelayMs: 5, retryAfterSeconds: 2 });
      emulator.faults.push(fault);
      const m = model();
      const failed = await read(m, ask('one two three four five six seven eight nine'));
      expect(failed.errors).toBe(1);
      expect(failed.error).toBeInstanceOf(ChatModelError);
      expect((failed.error as ChatModelError).code).toBe(code);
      expect((failed.error as ChatModelError).message).toMatch(message);
      expect((failed.error as ChatModelError).message).not.toContain(key);
      if (fault === 'rate_limited') expect((failed.error as ChatModelError).retryAfterMs).toBe(2_000);
      if (code === 'model_timeout') expect(failed.ms).toBeLessThan(1_500);
      // The request is gone on the emulator's side too, whatever the fault.
      expect(await emulator.idle()).toBe(true);
      expect(emulator.requests.at(-1)!.fault).toBe(fault);

      const next = await read(m, ask('and now a normal answer'));
      expect(next.errors).toBe(0);
      expect(next.deltas.join('')).toBe('and now a normal answer');
    });
  }

  it('an abort mid-stream ends the iteration promptly and quietly, three times over, and the emulator sees each request aborted', async () => {
    emulator.configure({ tokenDelayMs: 20 });
    emulator.replyWith('This reply is long enough to be cut off well before its end, word after word after word after word.');
    const m = model();
    for (let round = 0; round < 3; round++) {
      const controller = new AbortController();
      const deltas: string[] = [];
      let abortedAt = 0;
      const released = new Promise<number>((resolve) => emulator.once('released', () => resolve(performance.now())));
      // Aborted while the iteration waits for the next delta, not between two of them.
      for await (const delta of m.stream({ messages: ask(`round ${round}`), signal: controller.signal })) {
        deltas.push(delta);
        if (deltas.length === 2) setTimeout(() => {
          abortedAt = performance.now();
          controller.abort();
        }, 5);
      }
      const endedAt = performance.now();
      expect(abortedAt).toBeGreaterThan(0);
      expect(endedAt - abortedAt).toBeLessThan(100);
      expect(deltas.length).toBeLessThan(6);
      expect((await released) - abortedAt).toBeLessThan(500);
      const request = emulator.requests.at(-1)!;
      expect(request.outcome).toBe('aborted');
      expect(request.messages.at(-1)!.content).toBe(`round ${round}`);
    }
    expect(await emulator.idle()).toBe(true);
    expect(emulator.stats().active).toBe(0);
    emulator.replyWith(null);
    const next = await read(m, ask('still fine'));
    expect(next.deltas.join('')).toBe('still fine');
  });

  it('leaving the loop early (break) releases the request before the loop returns', async () => {
    emulator.configure({ tokenDelayMs: 20 });
    emulator.replyWith('one two three four five six seven eight nine ten eleven twelve');
    for await (const delta of model().stream({ messages: ask('x'), signal: new AbortController().signal })) {
      expect(delta.length).toBeGreaterThan(0);
      break;
    }
    expect(await emulator.idle(500)).toBe(true);
    expect(emulator.requests.at(-1)!.outcome).toBe('aborted');
  });

  it('an abort before the first text (request in flight) is quiet and releases it', async () => {
    emulator.configure({ firstTokenDelayMs: 2_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const outcome = await read(model(), ask('slow'), controller.signal);
    expect(outcome.errors).toBe(0);
    expect(outcome.deltas).toEqual([]);
    expect(outcome.ms).toBeLessThan(300);
    expect(await emulator.idle(500)).toBe(true);
    expect(emulator.requests.at(-1)!.outcome).toBe('aborted');
  });

  it('the whole-reply deadline ends an endless slow stream', async () => {
    emulator.configure({ tokenDelayMs: 20 });
    emulator.faults.push('endless');
    const m = withDeadlines(sdks[sdk](), { ...limits, wholeReplyMs: 600 });
    const outcome = await read(m, ask('talk forever'));
    expect(outcome.errors).toBe(1);
    expect((outcome.error as ChatModelError).code).toBe('model_timeout');
    expect((outcome.error as ChatModelError).message).toMatch(/did not finish its reply within 600 ms/);
    expect(outcome.deltas.length).toBeGreaterThan(5);
    expect(outcome.ms).toBeGreaterThanOrEqual(590);
    expect(outcome.ms).toBeLessThan(1_200);
    expect(await emulator.idle()).toBe(true);
    expect(emulator.requests.at(-1)!.outcome).toBe('aborted');
  });

  it('a wrong key is model_unavailable, and the key appears nowhere in the error', async () => {
    const wrong = 'sk-wrong-secret-123';
    const outcome = await read(withDeadlines(sdks[sdk](wrong), limits), ask('hello'));
    expect(outcome.errors).toBe(1);
    const error = outcome.error as ChatModelError;
    expect(error.code).toBe('model_unavailable');
    expect(error.message).toMatch(/HTTP 401/);
    expect(`${error.message} ${error.stack}`).not.toContain(wrong);
  });
});

it('an unreachable endpoint is model_failed, at once', async () => {
  const closed = new ChatEmulator();
  const url = await closed.listen();
  await closed.close();
  const outcome = await read(withDeadlines(openAiChatModel({ apiKey: key, baseURL: `${url}/v1`, model: 'm' }), limits), ask('anyone?'));
  expect(outcome.errors).toBe(1);
  expect((outcome.error as ChatModelError).code).toBe('model_failed');
  expect(outcome.ms).toBeLessThan(1_000);
});
