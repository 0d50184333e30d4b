// A test client of the wire contract over a real WebSocket: records every frame in order.
import WebSocket from 'ws';
import { decodeAudioFrame } from '../../src/protocol/audioFrame.js';
import type { ServerMessage } from '../../machines/types.js';

export type ClientFrame =
  | { kind: 'message'; message: ServerMessage; at: number }
  | { kind: 'audio'; stream: number; seq: number; pcm: Int16Array; at: number };

export class TestVoiceClient {
  readonly frames: ClientFrame[] = [];
  closeCode: number | null = null;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary) => {
      const at = performance.now();
      if (isBinary) {
        const f = decodeAudioFrame(new Uint8Array(data));
        this.frames.push({ kind: 'audio', stream: f.stream, seq: f.seq, pcm: f.pcm, at });
      } else {
        this.frames.push({ kind: 'message', message: JSON.parse(data.toString('utf8')) as ServerMessage, at });
      }
      this.notify();
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      this.notify();
    });
    ws.on('error', () => {});
  }

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestVoiceClient> {
    const ws = new WebSocket(url, options);
    const client = new TestVoiceClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  /** Connect and complete the handshake. */
  static async start(url: string, start: Record<string, unknown> = {}): Promise<TestVoiceClient> {
    const c = await TestVoiceClient.connect(url);
    c.send({ type: 'session.start', ...start });
    await c.waitForMessage((m) => m.type === 'session.ready');
    return c;
  }

  send(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  messages(): ServerMessage[] {
    return this.frames.flatMap((f) => (f.kind === 'message' ? [f.message] : []));
  }

  audioOf(stream: number): Int16Array[] {
    return this.frames.flatMap((f) => (f.kind === 'audio' && f.stream === stream ? [f.pcm] : []));
  }

  async waitForMessage<T extends ServerMessage>(pred: (m: ServerMessage) => boolean, timeoutMs = 10_000): Promise<T> {
    return (await this.waitFor(() => this.messages().find(pred), timeoutMs)) as T;
  }

  async waitForEnd(id: string, timeoutMs = 10_000) {
    return this.waitForMessage<Extract<ServerMessage, { type: 'speak.end' }>>(
      (m) => m.type === 'speak.end' && m.id === id,
      timeoutMs,
    );
  }

  async waitForClose(timeoutMs = 10_000): Promise<number> {
    return this.waitFor(() => this.closeCode ?? undefined, timeoutMs);
  }

  async waitFor<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms; frames so far: ${JSON.stringify(this.messages()).slice(0, 800)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.ws.close();
  }

  /** Drop the connection without a close handshake, as a lost network does. */
  terminate(): void {
    this.ws.terminate();
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Check the wire contract on one client's frame log: one end per accepted stream, no audio after it, gapless seq. */
export function assertContract(frames: ClientFrame[]): void {
  const accepted = new Set<number>();
  const ended = new Map<number, number>();
  const seq = new Map<number, number>();
  for (const f of frames) {
    if (f.kind === 'message') {
      if (f.message.type === 'speak.accepted') accepted.add(f.message.stream);
      if (f.message.type === 'speak.end') {
        if (ended.has(f.message.stream)) throw new Error(`second speak.end for stream ${f.message.stream}`);
        if (!accepted.has(f.message.stream)) throw new Error(`speak.end for unaccepted stream ${f.message.stream}`);
        ended.set(f.message.stream, 1);
      }
    } else {
      if (ended.has(f.stream)) throw new Error(`audio of stream ${f.stream} after its speak.end`);
      if (!accepted.has(f.stream)) throw new Error(`audio of unaccepted stream ${f.stream}`);
      const expected = seq.get(f.stream) ?? 0;
      if (f.seq !== expected) throw new Error(`stream ${f.stream}: seq ${f.seq}, expected ${expected}`);
      seq.set(f.stream, expected + 1);
      if (f.pcm.length === 0) throw new Error('empty audio frame');
    }
  }
}

/** The cursor of session.resume for a client that received `frames` (wire contract v2, "Resuming a session"). */
export function resumeCursor(frames: readonly ClientFrame[]): { lastStream: number; streams: Record<string, number> } {
  let lastStream = 0;
  const open = new Map<number, number>();
  for (const f of frames) {
    if (f.kind === 'audio') {
      if (open.has(f.stream)) open.set(f.stream, f.seq);
    } else if (f.message.type === 'speak.accepted') {
      lastStream = Math.max(lastStream, f.message.stream);
      open.set(f.message.stream, -1);
    } else if (f.message.type === 'speak.end') {
      open.delete(f.message.stream);
    }
  }
  return { lastStream, streams: Object.fromEntries([...open].map(([stream, seq]) => [String(stream), seq])) };
}

/** Every utterance's audio, concatenated in the order received, keyed by its id. */
export function samplesById(frames: readonly ClientFrame[]): Map<string, Int16Array> {
  const idOf = new Map<number, string>();
  const parts = new Map<string, Int16Array[]>();
  for (const f of frames) {
    if (f.kind === 'message' && f.message.type === 'speak.accepted') {
      idOf.set(f.message.stream, f.message.id);
      parts.set(f.message.id, []);
    } else if (f.kind === 'audio') parts.get(idOf.get(f.stream)!)!.push(f.pcm);
  }
  return new Map(
    [...parts].map(([id, list]) => {
      const out = new Int16Array(list.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of list) {
        out.set(p, at);
        at += p.length;
      }
      return [id, out];
    }),
  );
}

/** Three utterances, the last two queued: what the resume tests drop in the middle of and replay. */
export const resumeScript = [
  { type: 'speak', id: 'u1', text: 'The first answer is long enough to be cut in the middle. It has two sentences and more words.' },
  { type: 'speak', id: 'u2', text: 'The second one waits in the queue. Then it plays in full.', mode: 'enqueue' },
  { type: 'speak', id: 'u3', text: 'The third one ends the script here.', mode: 'enqueue' },
] as const;
