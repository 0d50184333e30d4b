// Load-generator clients for each contender's protocol, all with the same shape:
// connect, speak(id, text), stop(), and callbacks for audio and end with their arrival time.
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { WavStreamParser } from '../src/audio/wavStreamParser.js';
import { groqEnglishModel } from '../src/providers/groq/groqProvider.js';
import { emulatorVoice, epochMs, type ContenderName } from './common.js';

export interface BenchClient {
  speak(id: string, text: string): void;
  stop(): void;
  onAudio: (samples: number, at: number) => void;
  onEnd: (id: string, reason: string, at: number) => void;
  close(): void;
}

export async function connect(contender: ContenderName, port: number): Promise<BenchClient> {
  const client: BenchClient = { speak() {}, stop() {}, onAudio: () => {}, onEnd: () => {}, close() {} };
  if (contender === 'direct') return directClient(client, port);
  if (contender === 'socket.io') {
    const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    socket.on('audio', (pcm: Buffer) => client.onAudio(pcm.length / 2, epochMs()));
    socket.on('end', (m: { id: string; reason: string }) => client.onEnd(m.id, m.reason, epochMs()));
    client.speak = (id, text) => socket.emit('speak', { id, text });
    client.stop = () => socket.emit('stop');
    client.close = () => socket.disconnect();
    return client;
  }
  const ws = new WebSocket(`ws://127.0.0.1:${port}${contender === 'raw-ws' ? '/' : '/v1/voice'}`, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.on('error', () => {});
  const voxline = contender !== 'raw-ws';
  const streams = new Map<number, string>();
  let ready: () => void = () => {};
  ws.on('message', (data: Buffer, isBinary) => {
    const at = epochMs();
    if (isBinary) {
      client.onAudio((data.length - (voxline ? 8 : 0)) / 2, at);
      return;
    }
    const m = JSON.parse(data.toString()) as { type: string; id: string; reason: string; stream: number };
    if (m.type === 'session.ready') ready();
    else if (m.type === 'speak.accepted') streams.set(m.stream, m.id);
    else if (m.type === 'speak.end' || m.type === 'end') client.onEnd(m.id, m.reason, at);
  });
  if (voxline) {
    const started = new Promise<void>((resolve) => (ready = resolve));
    ws.send(JSON.stringify({ type: 'session.start' }));
    await started;
  }
  client.speak = (id, text) => ws.send(JSON.stringify({ type: 'speak', id, text }));
  client.stop = () => ws.send(JSON.stringify({ type: 'stop' }));
  client.close = () => ws.terminate();
  return client;
}

/** The baseline: the provider's endpoint fetched straight from the load generator (port: the emulator's). */
function directClient(client: BenchClient, port: number): BenchClient {
  let current: { id: string; abort: AbortController } | null = null;
  const finish = (id: string, reason: string) => {
    current = null;
    client.onEnd(id, reason, epochMs());
  };
  client.speak = (id, text) => {
    current?.abort.abort();
    const mine = { id, abort: new AbortController() };
    current = mine;
    void (async () => {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/openai/v1/audio/speech`, {
          method: 'POST',
          headers: { authorization: 'Bearer bench', 'content-type': 'application/json' },
          body: JSON.stringify({ model: groqEnglishModel, voice: emulatorVoice, input: text, response_format: 'wav' }),
          signal: mine.abort.signal,
        });
        const parser = new WavStreamParser();
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          const pcm = parser.push(chunk);
          if (pcm.length > 0) client.onAudio(pcm.length, epochMs());
        }
        if (current === mine) finish(id, 'completed');
      } catch {
        /* aborted by stop() */
      }
    })();
  };
  client.stop = () => {
    if (!current) return;
    current.abort.abort();
    finish(current.id, 'stopped');
  };
  client.close = () => current?.abort.abort();
  return client;
}
