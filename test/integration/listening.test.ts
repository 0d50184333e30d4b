// Listening over a real WebSocket server on 127.0.0.1: handshakes (granted, unavailable, v1
// unchanged), a turn end to end, barge-in, the echo of a short burst, refused binary frames and
// mic gate errors. In-process VAD and recognizer stand-ins (test/support/listeningStandIns.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import type { ServerMessage } from '../../machines/types.js';
import { settle } from '../support/settle.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';
import { bytesOf, levelVad, pcmMicInput, ScriptedRecognizer, tone } from '../support/listeningStandIns.js';

let emu: GroqEmulator;
let voxline: VoxlineServer;
let deaf: VoxlineServer;
let url: string;
let deafUrl: string;
let groqUrl: string;
const recognizer = new ScriptedRecognizer();

const wsUrl = (httpUrl: string) => `${httpUrl.replace('http', 'ws')}/v1/voice`;

beforeAll(async () => {
  // Real-time pacing: an utterance is still playing (server side) while the user speaks over it.
  emu = new GroqEmulator({ apiKey: 'k', realtime: 1 });
  const baseURL = await emu.listen();
  groqUrl = baseURL;
  const providers = [groqProvider({ apiKey: 'k', baseURL })];
  voxline = createVoxlineServer({
    providers,
    listen: { recognizers: [recognizer], createVad: () => levelVad(), createMicInput: () => pcmMicInput() },
  });
  url = wsUrl((await voxline.listen(0, '127.0.0.1')).url);
  deaf = createVoxlineServer({ providers: [groqProvider({ apiKey: 'k', baseURL })] });
  deafUrl = wsUrl((await deaf.listen(0, '127.0.0.1')).url);
});

afterAll(async () => {
  await voxline?.close();
  await deaf?.close();
  await emu?.close();
});

const listen = { format: { encoding: 'pcm_s16le', sampleRate: 16_000 } };

/** Stream `pcm` up in 20 ms binary frames. */
function sendMic(c: TestVoiceClient, pcm: Int16Array, frameMs = 20): void {
  const size = (frameMs * 16_000) / 1000;
  for (let i = 0; i < pcm.length; i += size) c.ws.send(bytesOf(pcm.subarray(i, Math.min(pcm.length, i + size))));
}

const listeningTypes = new Set(['input.speech_started', 'input.speech_stopped', 'transcript']);
const heard = (c: TestVoiceClient) => c.messages().filter((m) => listeningTypes.has(m.type));

async function released(server: VoxlineServer) {
  await settle(() => {
    const s = server.engine.stats();
    return s.sessions === 0 && s.listening.listeners === 0 && s.listening.recognitionJobs === 0 && s.upstreamJobs === 0;
  }, 5_000, 'listening released');
}

describe('listening handshakes', () => {
  it('a client that never asks sees version 1 exactly: protocol 1, no listen', async () => {
    const c = await TestVoiceClient.start(url);
    const ready = c.messages()[0] as Extract<ServerMessage, { type: 'session.ready' }>;
    expect(ready.protocol).toBe(1);
    expect(Object.keys(ready).sort()).toEqual(['format', 'protocol', 'sessionId', 'type', 'voices']);
    // …and its binary frames are refused as before.
    c.ws.send(bytesOf(tone(20)));
    const error = await c.waitForMessage((m) => m.type === 'error');
    expect(error).toMatchObject({ code: 'bad_request', message: 'binary frames are not accepted from clients' });
    c.close();
    await released(voxline);
  });

  it('granted: protocol 2 and the format the server takes', async () => {
    const c = await TestVoiceClient.start(url, { listen: { format: { encoding: 'pcm_s16le', sampleRate: 48_000 } } });
    const ready = c.messages()[0] as Extract<ServerMessage, { type: 'session.ready' }>;
    expect(ready).toMatchObject({ protocol: 2, listen: { format: { encoding: 'pcm_s16le', sampleRate: 16_000 } } });
    expect(c.messages()).toHaveLength(1);
    expect(voxline.engine.stats().listening.listeners).toBe(1);
    c.close();
    await released(voxline);
  });

  it('unavailable (a server without speech-to-text): session.ready (protocol 2, no listen), then listen_unavailable; the session speaks on', async () => {
    const c = await TestVoiceClient.start(deafUrl, { listen });
    await c.waitForMessage((m) => m.type === 'error');
    const [ready, error] = c.messages();
    expect(ready).toMatchObject({ type: 'session.ready', protocol: 2 });
    expect(ready).not.toHaveProperty('listen');
    expect(error).toMatchObject({ type: 'error', code: 'listen_unavailable' });
    c.ws.send(bytesOf(tone(20)));
    c.send({ type: 'input.commit' });
    await c.waitFor(() => (c.messages().filter((m) => m.type === 'error').length === 3 ? true : undefined));
    expect(c.messages().slice(2).map((m) => m.type === 'error' && m.code)).toEqual(['bad_request', 'bad_request']);
    c.send({ type: 'ping' });
    await c.waitForMessage((m) => m.type === 'pong');
    c.close();
    await released(deaf);
  });

  it('unavailable for a language no recognizer hears', async () => {
    const c = await TestVoiceClient.start(url, { listen: { language: 'ar' } });
    await c.waitForMessage((m) => m.type === 'error');
    expect(c.messages()[1]).toMatchObject({ code: 'listen_unavailable' });
    c.close();
    await released(voxline);
  });

  it('an invalid listen request is a bad session.start', async () => {
    const c = await TestVoiceClient.connect(url);
    c.send({ type: 'session.start', listen: { phrases: Array.from({ length: 101 }, (_, i) => `p${i}`) } });
    expect(await c.waitForClose()).toBe(1008);
    expect(c.messages()[0]).toMatchObject({ type: 'error', code: 'bad_request' });
  });
});

describe('a turn end to end', () => {
  it('speech_started, speech_stopped, one final transcript, in order, positions on the input clock', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    sendMic(c, tone(200, -90));
    sendMic(c, tone(600));
    sendMic(c, tone(1_000, -90));
    await c.waitForMessage((m) => m.type === 'transcript' && m.final);
    expect(heard(c)).toEqual([
      { type: 'input.speech_started', turn: 't1', audioMs: 200 },
      { type: 'input.speech_stopped', turn: 't1', audioMs: 800 },
      { type: 'transcript', turn: 't1', text: 'what time is it', final: true },
    ]);
    // The job got the pre-roll (300 ms, here 200 of silence before the onset) and the speech.
    const job = recognizer.jobs.at(-1)!;
    expect(job.samples).toBeGreaterThanOrEqual(800 * 16);
    expect(job.request.language).toBe('en');
    c.close();
    await released(voxline);
  });

  it('push to talk: input.commit ends a short word at once', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    sendMic(c, tone(100));
    c.send({ type: 'input.commit' });
    await c.waitForMessage((m) => m.type === 'transcript' && m.final);
    expect(heard(c).map((m) => m.type)).toEqual(['input.speech_started', 'input.speech_stopped', 'transcript']);
    c.close();
    await released(voxline);
  });

  it('mic gate errors reach the client and the session goes on', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    c.ws.send(Buffer.alloc(641)); // odd length
    c.ws.send(Buffer.alloc(100)); // under 10 ms
    await c.waitFor(() => (c.messages().filter((m) => m.type === 'error').length === 2 ? true : undefined));
    expect(c.messages().filter((m) => m.type === 'error').map((m) => m.type === 'error' && m.code)).toEqual(['bad_audio', 'bad_audio']);
    sendMic(c, tone(400));
    sendMic(c, tone(800, -90));
    await c.waitForMessage((m) => m.type === 'transcript' && m.final);
    c.send({ type: 'playback', stream: 1, playedMs: 10 });
    c.send({ type: 'ping' });
    await c.waitForMessage((m) => m.type === 'pong');
    expect(c.messages().filter((m) => m.type === 'error')).toHaveLength(2);
    c.close();
    await released(voxline);
  });

  it('a recognizer failure: the error, then an empty final', async () => {
    recognizer.onFinish = () => ({ error: 'recognizer_busy' });
    try {
      const c = await TestVoiceClient.start(url, { listen });
      sendMic(c, tone(400));
      sendMic(c, tone(800, -90));
      await c.waitForMessage((m) => m.type === 'transcript' && m.final);
      expect(heard(c).at(-1)).toMatchObject({ text: '', final: true });
      expect(c.messages().find((m) => m.type === 'error')).toMatchObject({ code: 'recognizer_busy' });
      c.close();
      await released(voxline);
      expect(voxline.engine.stats().listening.recognizerErrors.recognizer_busy).toBeGreaterThanOrEqual(1);
    } finally {
      recognizer.onFinish = () => ({ text: 'what time is it' });
    }
  });
});

describe('barge-in', () => {
  const longText = `${'This is a long answer that goes on and on. '.repeat(20)}`;

  it('user speech past the threshold ends the playing and queued utterances with interrupted; no audio of them follows', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    c.send({ type: 'speak', id: 'long', text: longText });
    c.send({ type: 'speak', id: 'next', text: 'And then this.', mode: 'enqueue' });
    await c.waitFor(() => (c.frames.some((f) => f.kind === 'audio') ? true : undefined));
    sendMic(c, tone(1_000));
    const end = await c.waitForEnd('long');
    expect(end.reason).toBe('interrupted');
    const next = await c.waitForEnd('next');
    expect(next.reason).toBe('interrupted');
    await new Promise((r) => setTimeout(r, 100));
    assertContract(c.frames);
    expect(voxline.engine.stats().listening.bargeIns).toBeGreaterThanOrEqual(1);
    c.close();
    await released(voxline);
  });

  it('a short burst (under the threshold) interrupts nothing', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    c.send({ type: 'speak', id: 'long', text: longText });
    await c.waitFor(() => (c.frames.some((f) => f.kind === 'audio') ? true : undefined));
    sendMic(c, tone(300));
    sendMic(c, tone(1_000, -90));
    await new Promise((r) => setTimeout(r, 300));
    expect(c.messages().some((m) => m.type === 'speak.end')).toBe(false);
    c.send({ type: 'stop' });
    expect((await c.waitForEnd('long')).reason).toBe('stopped');
    c.close();
    await released(voxline);
  });

  it('interruptions: false never interrupts', async () => {
    const c = await TestVoiceClient.start(url, { listen: { ...listen, interruptions: false } });
    c.send({ type: 'speak', id: 'long', text: longText });
    await c.waitFor(() => (c.frames.some((f) => f.kind === 'audio') ? true : undefined));
    sendMic(c, tone(1_000));
    await c.waitForMessage((m) => m.type === 'input.speech_started');
    await new Promise((r) => setTimeout(r, 200));
    expect(c.messages().some((m) => m.type === 'speak.end')).toBe(false);
    c.send({ type: 'stop' });
    await c.waitForEnd('long');
    c.close();
    await released(voxline);
  });
});

describe('ending', () => {
  it('shutdown: a turn in progress gets speech_stopped and its final before the close', async () => {
    const server = createVoxlineServer({
      providers: [groqProvider({ apiKey: 'k', baseURL: groqUrl })],
      listen: { recognizers: [new ScriptedRecognizer()], createVad: () => levelVad(), createMicInput: () => pcmMicInput() },
    });
    const c = await TestVoiceClient.start(wsUrl((await server.listen(0, '127.0.0.1')).url), { listen });
    sendMic(c, tone(500));
    await c.waitForMessage((m) => m.type === 'input.speech_started');
    await server.close();
    expect(await c.waitForClose()).toBe(1001);
    expect(heard(c).map((m) => m.type)).toEqual(['input.speech_started', 'input.speech_stopped', 'transcript']);
    expect(heard(c).at(-1)).toMatchObject({ final: true, text: '' });
    const s = server.engine.stats();
    expect(s.listening).toMatchObject({ listeners: 0, recognitionJobs: 0 });
  });

  it('a client gone mid-turn: everything is released', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    sendMic(c, tone(500));
    await c.waitForMessage((m) => m.type === 'input.speech_started');
    c.close();
    await released(voxline);
    expect(recognizer.live).toBe(0);
  });
});
