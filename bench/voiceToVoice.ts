// `tsx bench/voiceToVoice.ts [turns] [conversations]`: voice-to-voice latency of the agent turn,
// from the end of the user's speech to the first audio of the reply, split into its parts, with
// two stacks in turn: `offline` (the embedded echo model) and `emulated` (the chat emulator
// through groq-sdk, first text after a fixed delay). Each an in-process server (WebRTC VAD,
// PocketSphinx with phrases, the embedded voice); each conversation is a WebSocket client that
// sends a spoken phrase in real time (20 ms frames every 20 ms) and times what comes back.
// Forked by bench/run.ts (the figure goes back over IPC); alone, it prints the figures.
//
// The parts, client-side wall time:
//   endpointing  last speech sample sent → input.speech_stopped   (the configured silence, 700 ms, and the VAD)
//   recognition  input.speech_stopped → final transcript            (PocketSphinx's final)
//   first token  final transcript → first reply.text                (the model: emulator delay + SDK + engine)
//   first audio  first reply.text → first audio frame of reply:<t>  (the speaker, its sentence splitter, the voice)
// What the engine itself adds to the first token, on the server's clock (engine events, same
// process): from the final transcript leaving to the model request's start, plus from the
// model's first text to the reply.text leaving: the turn routing the final, building the
// request, and delivering the text. The first-audio part is the speaker waiting for the reply's first complete sentence
// (as fast as the model writes it) plus the voice's own first audio.
import WebSocket from 'ws';
import type { ServerMessage } from '../machines/types.js';
import { withDeadlines } from '../src/agent/deadlines.js';
import { groqChatModel } from '../src/agent/openAiChatModel.js';
import { ChatEmulator } from '../src/emulators/chatEmulator.js';
import type { ChatModel } from '../src/agent/types.js';
import { defaultListenLimits } from '../machines/types.js';
import { createListening } from '../src/listening/listening.js';
import { listenSampleRate } from '../src/listening/types.js';
import { decodeAudioFrame } from '../src/protocol/audioFrame.js';
import { espeakProvider } from '../src/providers/espeak/espeakProvider.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
import { frames, speechRenderer } from '../test/support/speechAudio.js';
import { summarize, type Summary } from './common.js';

export interface VoiceToVoiceStack {
  total: Summary;
  endpointing: Summary;
  recognition: Summary;
  firstToken: Summary;
  firstAudio: Summary;
  /** The first-token part minus the model's own time: what the engine adds there. */
  engineAdds: Summary;
}

export interface VoiceToVoiceFigure {
  turns: number;
  conversations: number;
  firstTokenDelayMs: number;
  endpointSilenceMs: number;
  stacks: { offline: VoiceToVoiceStack; emulated: VoiceToVoiceStack };
}

const turns = Math.max(1, Number(process.argv[2] ?? 10));
const conversations = Math.max(1, Number(process.argv[3] ?? 1));
const firstTokenDelayMs = 100;
const phrases = ['what time is it', 'what is the weather today', 'play some music', 'call my mother'];
const key = 'bench';

const emulator = new ChatEmulator({ apiKey: key, firstTokenDelayMs, tokenDelayMs: 10 });
await emulator.listen();
emulator.replyWith(({ messages }) => `You asked: ${messages.at(-1)?.content ?? ''}. Here is a short answer for you.`);

/**
 * What the engine adds to the first token, per session and turn, from the server's own clock:
 * from the final transcript leaving to the model request's start, plus from the model's first
 * text to the reply.text leaving (engine events, this process).
 */
const engineMs = new Map<string, number>();

async function startServer(model: ChatModel | undefined) {
  // One PocketSphinx process per conversation: a process decodes one turn at a time, from its
  // onset. Each server owns (and closes) its recognizers.
  // One PocketSphinx process per conversation up to RECOGNIZERS (default 4: 50 would not fit
  // two cores); turns beyond it wait for a process, which shows in the recognition part.
  const recognizers = Math.min(conversations, Number(process.env.RECOGNIZERS ?? 4));
  const listening = await createListening({ pocketsphinx: { size: recognizers, maxWaiting: conversations } });
  if (!listening.options) throw new Error(listening.summary);
  const listen = listening.options;
  const server = createVoxlineServer({ providers: [espeakProvider({ size: 2 })], listen, ...(model ? { agent: { model } } : {}), metrics: false });
  const started = new Map<string, number>();
  const firstText = new Map<string, number>();
  server.engine.on('replyStarted', (e) => started.set(`${e.sessionId}/${e.turn}`, performance.now()));
  server.engine.on('replyFirstText', (e) => firstText.set(`${e.sessionId}/${e.turn}`, performance.now()));
  server.engine.on('voiceToVoice', (e) => {
    const key = `${e.sessionId}/${e.turn}`;
    const [start, text] = [started.get(key), firstText.get(key)];
    if (start === undefined || text === undefined || e.finalAt === undefined || e.firstTextAt === undefined) return;
    engineMs.set(key, start - e.finalAt + (e.firstTextAt - text));
  });
  const url = `${(await server.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
  await server.engine.ready();
  return { server, url };
}

const renderer = await speechRenderer();
const audio = new Map<string, { pcm: Int16Array; speechEndMs: number }>();
for (const phrase of phrases) {
  const pcm = await renderer.render(phrase, { leadMs: 300, tailMs: 1_200 });
  let last = 0;
  for (let i = 0; i < pcm.length; i++) if (Math.abs(pcm[i]!) > 200) last = i;
  audio.set(phrase, { pcm, speechEndMs: (last * 1000) / listenSampleRate });
}
await renderer.close();

interface Sample {
  total: number;
  endpointing: number;
  recognition: number;
  firstToken: number;
  firstAudio: number;
  engineAdds: number;
}

async function conversation(url: string, index: number): Promise<Sample[]> {
  const ws = new WebSocket(url);
  const seen: Array<{ at: number; message?: ServerMessage; stream?: number }> = [];
  let wake: (() => void) | null = null;
  ws.on('message', (data, binary) => {
    const at = performance.now();
    if (binary) seen.push({ at, stream: decodeAudioFrame(new Uint8Array(data as Buffer)).stream });
    else seen.push({ at, message: JSON.parse(data.toString()) as ServerMessage });
    wake?.();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const waitFor = async <T>(probe: () => T | undefined, ms = 20_000 + 2_000 * conversations): Promise<T> => {
    const deadline = performance.now() + ms;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      if (performance.now() > deadline) throw new Error('voice-to-voice: timed out');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 50);
      });
    }
  };
  const find = (pred: (m: ServerMessage) => boolean) => seen.find((s) => s.message && pred(s.message));
  ws.send(JSON.stringify({ type: 'session.start', listen: { format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', phrases }, agent: {} }));
  const ready = await waitFor(() => find((m) => m.type === 'session.ready'));
  const sessionId = (ready.message as { sessionId: string }).sessionId;
  const samples: Sample[] = [];
  // Conversations start 150 ms apart: concurrent, but not all speaking in the same 20 ms.
  await new Promise((r) => setTimeout(r, index * 150));
  // Turn 1 warms up (a recognizer process starts with its first turn); turns 2… are measured.
  for (let t = 1; t <= turns + 1; t++) {
    const turn = `t${t}`;
    const { pcm, speechEndMs } = audio.get(phrases[(index + t) % phrases.length]!)!;
    // Real time: 20 ms frames every 20 ms, paced against the start (no drift).
    const started = performance.now();
    let sentMs = 0;
    let speechEndAt = NaN;
    for (const f of frames(pcm, 20)) {
      const due = started + sentMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      ws.send(Buffer.from(f.buffer, f.byteOffset, f.byteLength));
      sentMs += (f.length * 1000) / listenSampleRate;
      if (Number.isNaN(speechEndAt) && sentMs >= speechEndMs) speechEndAt = performance.now() - (sentMs - speechEndMs);
    }
    const end = await waitFor(() => find((m) => m.type === 'turn.end' && m.turn === turn));
    const stopped = find((m) => m.type === 'input.speech_stopped' && m.turn === turn)!;
    const final = find((m) => m.type === 'transcript' && m.final && m.turn === turn)!;
    const text = find((m) => m.type === 'reply.text' && m.turn === turn);
    const accepted = find((m) => m.type === 'speak.accepted' && m.id === `reply:${turn}`);
    const firstAudio = accepted ? seen.find((s) => s.stream === (accepted.message as { stream: number }).stream) : undefined;
    if ((end.message as { status: string }).status !== 'completed' || !text || !firstAudio) throw new Error(`voice-to-voice: turn ${turn} did not complete: ${JSON.stringify(end.message)}`);
    if (t > 1) samples.push({
      total: firstAudio.at - speechEndAt,
      endpointing: stopped.at - speechEndAt,
      recognition: final.at - stopped.at,
      firstToken: text.at - final.at,
      firstAudio: firstAudio.at - text.at,
      engineAdds: engineMs.get(`${sessionId}/${turn}`) ?? NaN,
    });
  }
  ws.close();
  return samples;
}

async function runStack(model: ChatModel | undefined): Promise<VoiceToVoiceStack> {
  const { server, url } = await startServer(model);
  try {
    const all = (await Promise.all(Array.from({ length: conversations }, (_, i) => conversation(url, i)))).flat();
    const pick = (k: keyof Sample) => summarize(all.map((s) => s[k]));
    return { total: pick('total'), endpointing: pick('endpointing'), recognition: pick('recognition'), firstToken: pick('firstToken'), firstAudio: pick('firstAudio'), engineAdds: pick('engineAdds') };
  } finally {
    await server.close();
  }
}

const offline = await runStack(undefined); // the engine's default: the echo model
const emulated = await runStack(withDeadlines(groqChatModel({ apiKey: key, baseURL: emulator.url, maxTokens: 64 })));
const figure: VoiceToVoiceFigure = { turns, conversations, firstTokenDelayMs, endpointSilenceMs: defaultListenLimits.endpointSilenceMs, stacks: { offline, emulated } };
await emulator.close();

if (process.send) process.send(figure, () => process.exit(0));
else {
  const line = (name: string, s: Summary) => `  ${name.padEnd(12)} p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms\n`;
  process.stdout.write(`voice-to-voice, ${conversations} conversation(s) × ${turns} turns (endpointing silence ${figure.endpointSilenceMs} ms):\n`);
  for (const [name, stack] of Object.entries(figure.stacks)) {
    process.stdout.write(`${name}${name === 'emulated' ? ` (model first token ${firstTokenDelayMs} ms)` : ' (echo model)'}:\n`);
    for (const k of ['total', 'endpointing', 'recognition', 'firstToken', 'firstAudio', 'engineAdds'] as const) process.stdout.write(line(k, stack[k]));
  }
  process.exit(0);
}
