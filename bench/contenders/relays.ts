// The two alternatives voxline is measured against, fed by the same upstream emulator:
// a bare `ws` relay (no lifecycle at all: the floor) and the socket.io event relay many
// teams start with. Each relays one utterance at a time per connection: fetch the speech,
// read the WAV, forward PCM, say `end`; STOP aborts the fetch.
import type { Server } from 'node:http';
import { Server as SocketIoServer } from 'socket.io';
import { WebSocketServer } from 'ws';
import { WavStreamParser } from '../../src/audio/wavStreamParser.js';
import { groqEnglishModel } from '../../src/providers/groq/groqProvider.js';
import { emulatorVoice } from '../common.js';

type Send = { audio(pcm: Buffer): void; end(id: string, reason: string): void };

/** One relayed utterance at a time: fetch the speech, forward its PCM, say `end`; STOP aborts the fetch. */
export function relayer(upstream: string, out: Send) {
  let current: { id: string; abort: AbortController } | null = null;
  const speak = async (id: string, text: string) => {
    current?.abort.abort();
    const abort = new AbortController();
    const mine = { id, abort };
    current = mine;
    try {
      const response = await fetch(`${upstream}/openai/v1/audio/speech`, {
        method: 'POST',
        headers: { authorization: 'Bearer bench', 'content-type': 'application/json' },
        body: JSON.stringify({ model: groqEnglishModel, voice: emulatorVoice, input: text, response_format: 'wav' }),
        signal: abort.signal,
      });
      const parser = new WavStreamParser();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        const pcm = parser.push(chunk);
        if (pcm.length > 0) out.audio(Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength));
      }
      if (current === mine) {
        current = null;
        out.end(id, 'completed');
      }
    } catch {
      /* aborted or failed: the relay has no lifecycle to report it */
    }
  };
  const stop = () => {
    if (!current) return;
    const { id, abort } = current;
    current = null;
    abort.abort();
    out.end(id, 'stopped');
  };
  return { speak, stop, close: () => current?.abort.abort() };
}

export function attachRawRelay(server: Server, upstream: string): () => void {
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    const r = relayer(upstream, {
      audio: (pcm) => ws.send(pcm, { binary: true }),
      end: (id, reason) => ws.send(JSON.stringify({ type: 'end', id, reason })),
    });
    ws.on('message', (data) => {
      try {
        const m = JSON.parse(String(data)) as { type: string; id: string; text: string };
        if (m.type === 'speak') void r.speak(m.id, m.text);
        else if (m.type === 'stop') r.stop();
      } catch {
        /* no validation either */
      }
    });
    ws.on('close', r.close);
    ws.on('error', () => {});
  });
  return () => wss.close();
}

export function attachSocketIoRelay(server: Server, upstream: string): () => void {
  const io = new SocketIoServer(server, { perMessageDeflate: false, httpCompression: false, maxHttpBufferSize: 1e6 });
  io.on('connection', (socket) => {
    const r = relayer(upstream, {
      audio: (pcm) => socket.emit('audio', pcm),
      end: (id, reason) => socket.emit('end', { id, reason }),
    });
    socket.on('speak', (m: { id: string; text: string }) => void r.speak(m.id, m.text));
    socket.on('stop', () => r.stop());
    socket.on('disconnect', r.close);
  });
  return () => void io.close();
}
