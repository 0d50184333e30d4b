// `voxline say "text" --out hello.wav`: speak through a running server, or through the
// embedded voice in this process, and write a WAV file. A progress line on stderr shows how
// much audio has arrived.
import { writeFile } from 'node:fs/promises';
import WebSocket from 'ws';
import type { ServerMessage } from '../../machines/types.js';
import { concatInt16, int16ToBytes, wavHeader } from '../audio/pcm.js';
import { providersFromEnv } from '../config/providersFromEnv.js';
import { decodeAudioFrame } from '../protocol/audioFrame.js';
import { createVoxlineServer } from '../server/voxlineServer.js';
import type { SayConfig } from './config.js';

export class SayError extends Error {}

export async function say(config: SayConfig, progress: NodeJS.WritableStream = process.stderr): Promise<{ seconds: number }> {
  let local: { close(): Promise<void> } | null = null;
  let url = config.server;
  if (!url) {
    const setup = await providersFromEnv(process.env, { espeakWorkers: 1 });
    const server = createVoxlineServer({ providers: setup.providers, metrics: false });
    const listening = await server.listen(0, '127.0.0.1');
    await server.engine.ready();
    url = `${listening.url.replace('http', 'ws')}/v1/voice`;
    local = { close: async () => (await server.close(), await setup.close()) };
  }
  try {
    const pcm = await speak(url, config, progress);
    await writeFile(config.out, Buffer.concat([wavHeader(config.sampleRate, pcm.byteLength), int16ToBytes(pcm)]));
    return { seconds: pcm.length / config.sampleRate };
  } finally {
    await local?.close();
  }
}

function speak(url: string, config: SayConfig, progress: NodeJS.WritableStream): Promise<Int16Array> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const chunks: Int16Array[] = [];
    let samples = 0;
    let stream = -1;
    let shown = 0;
    const show = (final: boolean) => {
      const seconds = samples / config.sampleRate;
      if (!final && seconds - shown < 0.5) return;
      shown = seconds;
      progress.write(`\rvoxline: ${seconds.toFixed(1)} s of audio${final ? '\n' : ''}`);
    };
    const fail = (message: string) => {
      ws.terminate();
      reject(new SayError(message));
    };
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'session.start', ...(config.token ? { token: config.token } : {}), format: { encoding: 'pcm_s16le', sampleRate: config.sampleRate } }));
    });
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        const frame = decodeAudioFrame(new Uint8Array(data));
        if (frame.stream !== stream) return;
        chunks.push(frame.pcm);
        samples += frame.pcm.length;
        show(false);
        return;
      }
      const message = JSON.parse(data.toString('utf8')) as ServerMessage;
      if (message.type === 'session.ready') {
        if (message.format.sampleRate !== config.sampleRate) return fail(`the server does not offer ${config.sampleRate} Hz`);
        ws.send(JSON.stringify({ type: 'speak', id: 'say', text: config.text, ...(config.voice ? { voice: config.voice } : {}) }));
      } else if (message.type === 'speak.accepted') {
        stream = message.stream;
      } else if (message.type === 'error') {
        fail(`${message.code}: ${message.message}`);
      } else if (message.type === 'speak.end') {
        show(true);
        ws.close(1000);
        if (message.reason === 'completed') resolve(concatInt16(chunks));
        else fail(`the utterance ended ${message.reason}${message.error ? ` (${message.error.code}: ${message.error.message})` : ''}`);
      }
    });
    ws.on('error', (error) => fail(`cannot reach ${url}: ${error.message}`));
    ws.on('close', (code) => {
      if (stream === -1 || samples === 0) fail(`the server closed the connection (${code})`);
    });
  });
}
