// Load-generator clients for each contender's protocol, all with the same shape:
// connect, speak(id, text), stop(), and callbacks for audio and end with their arrival time.
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { epochMs, type ContenderName } from './common.js';
import { relayer } from './contenders/relays.js';

export interface BenchClient {
  speak(id: string, text: string): void;
  stop(): void;
  onAudio: (samples: number, at: number) => void;
  onEnd: (id: string, reason: string, at: number) => void;
  /** voxline only: each audio frame's PCM payload (after its 8-byte header), when set. */
  onFrame?: (pcm: Buffer, at: number) => void;
  close(): void;
}

/** Messages every client of this process received (binary: audio frames), for per-utterance counts. */
export const received = { binary: 0, text: 0 };

export async function connect(contender: ContenderName, port: number): Promise<BenchClient> {
  const client: BenchClient = { speak() {}, stop() {}, onAudio: () => {}, onEnd: () => {}, close() {} };
  if (contender === 'direct') return directClient(client, port);
  if (contender === 'socket.io') {
    const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false, forceNew: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    socket.on('audio', (pcm: Buffer) => {
      received.binary++;
      client.onAudio(pcm.length / 2, epochMs());
    });
    socket.on('end', (m: { id: string; reason: string }) => {
      received.text++;
      client.onEnd(m.id, m.reason, epochMs());
    });
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
      received.binary++;
      client.onAudio((data.length - (voxline ? 8 : 0)) / 2, at);
      if (voxline) client.onFrame?.(data.subarray(8), at);
      return;
    }
    received.text++;
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

/**
 * The baseline: the provider's endpoint fetched straight from the load generator (port: the
 * emulator's), with the relays' own fetch-and-parse loop and no socket in between.
 */
function directClient(client: BenchClient, port: number): BenchClient {
  const r = relayer(`http://127.0.0.1:${port}`, {
    audio: (pcm) => client.onAudio(pcm.length / 2, epochMs()),
    end: (id, reason) => client.onEnd(id, reason, epochMs()),
  });
  client.speak = (id, text) => void r.speak(id, text);
  client.stop = r.stop;
  client.close = r.close;
  return client;
}
