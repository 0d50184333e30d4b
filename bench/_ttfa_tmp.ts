process.setSourceMapsEnabled(false);
import Groq from 'groq-sdk';
import WebSocket from 'ws';
import { GroqEmulator } from '../src/emulators/groqEmulator.js';
import { groqProvider } from '../src/providers/groq/groqProvider.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
const emu = new GroqEmulator({ firstByteDelayMs: 20, realtime: 1, chunkMs: 20 });
const url = await emu.listen();
const now = () => performance.now();
const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(2);
const text = 'Good morning, here is the weather for today.';
// direct fetch
const d: number[] = [];
for (let i = 0; i < 30; i++) {
  const ac = new AbortController();
  const t0 = now();
  const r = await fetch(`${url}/openai/v1/audio/speech`, { method: 'POST', headers: { authorization: 'Bearer x', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'canopylabs/orpheus-v1-english', voice: 'troy', input: `Mark ${i}. ${text}`, response_format: 'wav' }), signal: ac.signal });
  const rd = r.body!.getReader();
  let got = 0;
  while (got <= 44) { const { value } = await rd.read(); got += value!.length; }
  d.push(now() - t0);
  ac.abort();
  await new Promise((r) => setTimeout(r, 20));
}
// groq sdk
const g: number[] = [];
const client = new Groq({ apiKey: 'x', baseURL: url, maxRetries: 0 });
for (let i = 0; i < 30; i++) {
  const ac = new AbortController();
  const t0 = now();
  const r = await client.audio.speech.create({ model: 'canopylabs/orpheus-v1-english', voice: 'troy', input: `Mark ${i}. ${text}`, response_format: 'wav' }, { signal: ac.signal });
  const rd = r.body!.getReader();
  let got = 0;
  while (got <= 44) { const { value } = await rd.read(); got += value!.length; }
  g.push(now() - t0);
  ac.abort();
  await new Promise((r) => setTimeout(r, 20));
}
// voxline
const marks: Record<string, number[]> = { call: [], first: [], recv: [], accepted: [] };
import { TokenBucket } from 'limiter';
const tr = TokenBucket.prototype.tryRemoveTokens;
TokenBucket.prototype.tryRemoveTokens = function (n: number) { if (n === 1 && t0g && marks.recv!.length < marks.accepted!.length + 1) marks.recv!.push(now() - t0g); return tr.call(this, n); };
let t0g = 0;
const prov = groqProvider({ apiKey: 'x', baseURL: url });
const orig = prov.synthesize;
prov.synthesize = async function* (req) {
  if (/^Mark/.test(req.text)) marks.call!.push(now() - t0g);
  let first = true;
  for await (const b of orig(req)) {
    if (first && /^Mark/.test(req.text)) { marks.first!.push(now() - t0g); first = false; }
    yield b;
  }
};
const server = createVoxlineServer({ providers: [prov], metrics: false });
await server.engine.ready();
const eng = server.engine as unknown as Record<string, (...a: unknown[]) => unknown>;
const ocf = eng.onClientFrame!;
marks.frameIn = []; marks.frameOut = [];
eng.onClientFrame = function (...a: unknown[]) { const t = now() - t0g; const r = ocf.apply(this, a); if (String(a[1]).includes('"speak"')) { marks.frameIn!.push(t); marks.frameOut!.push(now() - t0g); } return r; };
server.engine.on('utteranceAccepted', () => marks.accepted!.push(now() - t0g));
const { port } = await server.listen(0, '127.0.0.1');
const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/voice`);
await new Promise((r) => ws.once('open', r));
let onMsg: (d: Buffer, bin: boolean) => void = () => {};
ws.on('message', (data: Buffer, bin) => onMsg(data, bin));
ws.send(JSON.stringify({ type: 'session.start' }));
await new Promise<void>((r) => (onMsg = () => r()));
const v: number[] = [];
for (let i = 0; i < 60; i++) {
  const t0 = now();
  t0g = t0;
  const t = await new Promise<number>((resolve) => {
    let first = true;
    onMsg = (data, bin) => {
      if (bin && first) { first = false; resolve(now() - t0); ws.send(JSON.stringify({ type: 'stop' })); }
    };
    ws.send(JSON.stringify({ type: 'speak', id: `v${i}`, text: `Mark ${i}. ${text}` }));
  });
  v.push(t);
  await new Promise<void>((r) => (onMsg = (data, bin) => { if (!bin && String(data).includes('speak.end')) r(); }));
  await new Promise((r) => setTimeout(r, 20));
}
console.log({ frameIn: med(marks.frameIn!.slice(5)), frameOut: med(marks.frameOut!.slice(5)), accepted: med(marks.accepted!.slice(5)), call: med(marks.call!.slice(5)), first: med(marks.first!.slice(5)), direct: med(d.slice(5)), sdk: med(g.slice(5)), voxline: med(v.slice(5)) });
process.exit(0);
