// `tsx bench/chatFirstToken.ts [rounds]`: what the chat adapter adds to the time to first
// token. Against the chat emulator (first text after a fixed delay), sequential replies read
// by a bare fetch that stops at the first content chunk (the floor) and by the adapters
// (openai and groq SDKs behind withDeadlines), one process. Run by bench/run.ts as its own
// process (the figure goes back over IPC); alone, it prints the figures.
import { withDeadlines } from '../src/agent/deadlines.js';
import { groqChatModel, openAiChatModel } from '../src/agent/openAiChatModel.js';
import type { ChatModel } from '../src/agent/types.js';
import { ChatEmulator } from '../src/emulators/chatEmulator.js';
import { summarize, type Summary } from './common.js';

export interface ChatFirstTokenFigure {
  rounds: number;
  firstTokenDelayMs: number;
  direct: Summary;
  /** Each adapter's own time to first token, and what it adds to the direct p50 / p99. */
  adapters: Record<string, { own: Summary; addedP50: number; addedP99: number }>;
}

const rounds = Number(process.argv[2] ?? 200);
const firstTokenDelayMs = 20;
const key = 'bench';
const messages = [{ role: 'user' as const, content: 'What is the weather like today?' }];

const emulator = new ChatEmulator({ apiKey: key, firstTokenDelayMs, tokenDelayMs: 1 });
const url = await emulator.listen();
emulator.replyWith('It is sunny and warm, with a light breeze from the west.');

/** The floor: one streamed request, read until the first chunk carrying text, then dropped. */
async function direct(): Promise<number> {
  const controller = new AbortController();
  const started = performance.now();
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages, stream: true, max_tokens: 64 }),
    signal: controller.signal,
  });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw new Error('no text in the stream');
    seen += decoder.decode(value, { stream: true });
    // The role chunk carries `"content":""`; the first text is the first non-empty content.
    if (/"content":"[^"]/.test(seen)) break;
  }
  const at = performance.now() - started;
  controller.abort();
  await reader.cancel().catch(() => {});
  return at;
}

async function through(model: ChatModel): Promise<number> {
  const started = performance.now();
  for await (const delta of model.stream({ messages, signal: new AbortController().signal })) {
    if (delta) return performance.now() - started; // leaving the loop releases the request
  }
  throw new Error('no text');
}

async function sample(fn: () => Promise<number>): Promise<number[]> {
  for (let i = 0; i < Math.min(10, rounds); i++) await fn(); // warm-up: connections, JIT
  const out: number[] = [];
  for (let i = 0; i < rounds; i++) out.push(await fn());
  return out;
}

const adapters: Record<string, ChatModel> = {
  openai: withDeadlines(openAiChatModel({ apiKey: key, baseURL: `${url}/v1`, model: 'm', maxTokens: 64 })),
  groq: withDeadlines(groqChatModel({ apiKey: key, baseURL: url, maxTokens: 64 })),
};
const base = summarize(await sample(direct));
const figure: ChatFirstTokenFigure = { rounds, firstTokenDelayMs, direct: base, adapters: {} };
for (const [name, model] of Object.entries(adapters)) {
  const own = summarize(await sample(() => through(model)));
  figure.adapters[name] = { own, addedP50: own.p50 - base.p50, addedP99: own.p99 - base.p99 };
}
await emulator.idle(2_000);
await emulator.close();

if (process.send) process.send(figure, () => process.exit(0));
else {
  process.stdout.write(`direct: first token p50 ${base.p50.toFixed(2)} ms, p99 ${base.p99.toFixed(2)} ms (${rounds} sequential replies, emulator delay ${firstTokenDelayMs} ms)\n`);
  for (const [name, a] of Object.entries(figure.adapters)) {
    process.stdout.write(`${name}: p50 ${a.own.p50.toFixed(2)} ms, p99 ${a.own.p99.toFixed(2)} ms; adds p50 ${a.addedP50.toFixed(2)} ms, p99 ${a.addedP99.toFixed(2)} ms\n`);
  }
}
