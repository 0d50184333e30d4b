// `node --expose-gc --import tsx bench/sessionCost.ts`: what a session costs apart from its
// audio. The heap of an idle session (after the handshake, before any speech), the CPU of one
// short utterance on an open session (SPEAK → speak.end), and of a whole short-lived session
// (connect → START → one utterance → gone: what every speech request costs). In process, no
// sockets; medians of seven rounds.
import { VoiceEngine, type SessionTransport } from '../src/engine/voiceEngine.js';
import type { TtsProvider } from '../src/providers/types.js';
import { percentile } from './common.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc --import tsx');
const provider: TtsProvider = {
  name: 'p',
  voices: [{ id: 'v', language: 'en', provider: 'p' }],
  maxPieceChars: 1000,
  async *synthesize() {
    yield { samples: new Int16Array(480), sampleRate: 24_000 };
  },
  ready: () => Promise.resolve(),
  isReady: () => true,
  close: () => Promise.resolve(),
};
const engine = new VoiceEngine({ providers: [provider] });
let onEnd: () => void = () => {};
const transport: SessionTransport = {
  send: (m) => m.type === 'speak.end' && onEnd(),
  sendAudio: () => {},
  close: () => {},
  bufferedBytes: () => 0,
  isOpen: () => true,
};
const settleHeap = async () => {
  gc();
  await new Promise((r) => setTimeout(r, 50));
  gc();
  return process.memoryUsage().heapUsed;
};
const speak = (session: ReturnType<VoiceEngine['startSession']>, id: string) =>
  new Promise<void>((resolve) => {
    onEnd = resolve;
    session.send({ type: 'SPEAK', request: { id, text: 'Hello.', final: true, mode: 'enqueue' } });
  });

const idle = 5_000;
const before = await settleHeap();
const sessions = Array.from({ length: idle }, () => {
  const s = engine.startSession(transport);
  s.send({ type: 'START', sampleRate: 24_000 });
  return s;
});
const idleSessionBytes = Math.round(((await settleHeap()) - before) / idle);
for (const s of sessions) s.send({ type: 'CLIENT_GONE' });

const perUtterance: number[] = [];
const perSession: number[] = [];
const n = 2_000;
for (let round = 0; round < 7; round++) {
  const open = engine.startSession(transport);
  open.send({ type: 'START', sampleRate: 24_000 });
  let t0 = performance.now();
  for (let i = 0; i < n; i++) await speak(open, `u${round}-${i}`);
  perUtterance.push(((performance.now() - t0) / n) * 1000);
  open.send({ type: 'CLIENT_GONE' });
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = engine.startSession(transport);
    s.send({ type: 'START', sampleRate: 24_000 });
    await speak(s, 'u');
    s.send({ type: 'CLIENT_GONE' });
  }
  perSession.push(((performance.now() - t0) / n) * 1000);
}
process.stdout.write(
  JSON.stringify({ idleSessionBytes, utteranceUs: +percentile(perUtterance, 50).toFixed(1), shortSessionUs: +percentile(perSession, 50).toFixed(1) }) + '\n',
);
await engine.shutdown(100);
