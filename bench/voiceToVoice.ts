// `tsx bench/voiceToVoice.ts [turns] [conversations]`: voice-to-voice latency of the agent turn,
// from the end of the user's speech to the first audio of the reply, split into its parts.
// One in-process server (WebRTC VAD, PocketSphinx with phrases, the embedded voice, the chat
// emulator through groq-sdk with a fixed first-token delay); each conversation is a WebSocket
// client that sends a spoken phrase in real time (20 ms frames every 20 ms) and times what comes
// back. Forked by bench/run.ts (the figure goes back over IPC); alone, it prints the figures.
//
// The parts, client-side wall time:
//   endpointing  last speech sample sent → input.speech_stopped   (the configured silence, 700 ms, and the VAD)
//   recognition  input.speech_stopped → final transcript            (PocketSphinx's final)
//   first token  final transcript → first reply.text                (the model: emulator delay + SDK + engine)
//   first audio  first reply.text → first audio frame of reply:<t>  (the speaker, its sentence splitter, the voice)
// What the engine itself adds is what is left after the parts it does not own: first token
// minus the emulator's delay, and first audio minus the voice's own first audio (measured alone).
import WebSocket from 'ws';
import type { ServerMessage } from '../machines/types.js';
import { withDeadlines } from '../src/agent/deadlines.js';
import { groqChatModel } from '../src/agent/openAiChatModel.js';
import { ChatEmulator } from '../src/emulators/chatEmulator.js';
import { createListening } from '../src/listening/listening.js';
import { listenSampleRate } from '../src/listening/types.js';
import { decodeAudioFrame } from '../src/protocol/audioFrame.js';
import { espeakProvider } from '../src/providers/espeak/espeakProvider.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
import { frames, speechRenderer } from '../test/support/speechAudio.js';
import { summarize, type Summary } from './common.js';

export interface VoiceToVoiceFigure {
  turns: number;
  conversations: number;
  firstTokenDelayMs: number;
  endpointSilenceMs: number;
  total: Summary;
  endpointing: Summary;
  recognition: Summary;
  firstToken: Summary;
  firstAudio: Summary;
}

const turns = Math.max(1, Number(process.argv[2] ?? 10));
const conversations = Math.max(1, Number(process.argv[3] ?? 1));
const firstTokenDelayMs = 100;
const phrases = ['what time is it', 'what is the weather today', 'play some music', 'call my mother'];
const key = 'bench';

const emulator = new ChatEmulator({ apiKey: key, firstTokenDelayMs, tokenDelayMs: 10 });
await emulator.listen();
emulator.replyWith(({ messages }) => `You asked: ${messages.at(-1)?.content ?? ''}. Here is a short answer for you.`);
// One PocketSphinx process per conversation: a process decodes one turn at a time, from its onset.
const listening = await createListening({ pocketsphinx: { size: conversations, maxWaiting: conversations } });
if (!listening.options) throw new Error(listening.summary);
const server = createVoxlineServer({
  providers: [espeakProvider({ size: 2 })],
  listen: listening.options,
  agent: { model: withDeadlines(groqChatModel({ apiKey: key, baseURL: emulator.url, maxTokens: 64 })) },
  metrics: false,
});
const url = `${(await server.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
await server.engine.ready();
const endpointSilenceMs = server.engine.listenLimits().endpointSilenceMs;

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
}

async function conversation(index: number): Promise<Sample[]> {
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
  const waitFor = async <T>(probe: () => T | undefined, ms = 20_000): Promise<T> => {
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
  await waitFor(() => find((m) => m.type === 'session.ready'));
  const samples: Sample[] = [];
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
    });
  }
  ws.close();
  return samples;
}

const all = (await Promise.all(Array.from({ length: conversations }, (_, i) => conversation(i)))).flat();
const pick = (k: keyof Sample) => summarize(all.map((s) => s[k]));
const figure: VoiceToVoiceFigure = {
  turns,
  conversations,
  firstTokenDelayMs,
  endpointSilenceMs,
  total: pick('total'),
  endpointing: pick('endpointing'),
  recognition: pick('recognition'),
  firstToken: pick('firstToken'),
  firstAudio: pick('firstAudio'),
};
await server.close();
await emulator.close();

if (process.send) process.send(figure, () => process.exit(0));
else {
  const line = (name: string, s: Summary) => `${name.padEnd(12)} p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms\n`;
  process.stdout.write(`voice-to-voice, ${conversations} conversation(s) × ${turns} turns (endpointing silence ${endpointSilenceMs} ms, model first token ${firstTokenDelayMs} ms):\n`);
  for (const k of ['total', 'endpointing', 'recognition', 'firstToken', 'firstAudio'] as const) process.stdout.write(line(k, figure[k]));
  process.exit(0);
}
