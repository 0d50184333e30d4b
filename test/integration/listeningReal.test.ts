// Listening with the real parts over a real WebSocket server on 127.0.0.1: the WebRTC VAD, the
// mic gate and PocketSphinx (Debian, out of process) hear sentences spoken by the embedded voice
// and streamed up as 20 ms microphone frames; barge-in is timed on the input's media clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { createListening } from '../../src/listening/listening.js';
import { PocketSphinxRecognizer } from '../../src/listening/pocketsphinx/index.js';
import { espeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { bytesOf } from '../support/listeningStandIns.js';
import { settle } from '../support/settle.js';
import { frames, silence, type SpeechRenderer } from '../support/speechAudio.js';
import { sendMic, startListeningServer, type ListeningServer } from '../support/listeningServer.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

const phrases = [
  'turn on the kitchen lights',
  'what time is it',
  'play some music',
  'stop the music',
  'call my mother',
  'read my messages',
  'set a timer for ten minutes',
  'open the front door',
  'what is the weather today',
  'turn off the radio',
  'close the window',
  'good morning',
];

let server: ListeningServer;
let voxline: VoxlineServer;
let url: string;
let speech: SpeechRenderer;

beforeAll(async () => {
  server = await startListeningServer();
  ({ voxline, url, speech } = server);
  // The engine warms its recognizers when it is made: the first turn does not pay for a process start.
  const sphinx = server.listening.options!.recognizers.find((r) => r instanceof PocketSphinxRecognizer) as PocketSphinxRecognizer;
  await settle(() => sphinx.isReady(), 20_000, 'PocketSphinx warm before any session');
}, 60_000);

afterAll(async () => {
  await server?.close();
});

const listen = { format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', phrases };

const released = () => server.released();

/** Send one frame, then a ping, and wait for its pong: everything the frame caused has arrived. */
async function sendInStep(c: TestVoiceClient, frame: Int16Array): Promise<void> {
  const pongs = c.messages().filter((m) => m.type === 'pong').length;
  c.ws.send(bytesOf(frame));
  c.send({ type: 'ping' });
  await c.waitFor(() => (c.messages().filter((m) => m.type === 'pong').length > pongs ? true : undefined));
}

/** The first sample louder than silence, in ms. */
function onsetMs(pcm: Int16Array): number {
  for (let i = 0; i < pcm.length; i++) if (Math.abs(pcm[i]!) > 200) return (i * 1000) / 16_000;
  return NaN;
}

describe('listening with WebRTC VAD and PocketSphinx', () => {
  it('with phrases, each of 12 spoken sentences comes back exactly, one final per turn', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    const ready = c.messages()[0] as Extract<ServerMessage, { type: 'session.ready' }>;
    expect(ready).toMatchObject({ protocol: 2, listen: { format: { encoding: 'pcm_s16le', sampleRate: 16_000 } } });
    const finals: string[] = [];
    for (const [i, phrase] of phrases.entries()) {
      const pcm = await speech.render(phrase, { leadMs: 300, tailMs: 1_000 });
      // 100 ms frames at the frame budget (100 frames/s): ten times real time, never a flood.
      await sendMic(c.ws, pcm);
      const final = await c.waitForMessage((m) => m.type === 'transcript' && m.final && m.turn === `t${i + 1}`, 20_000);
      finals.push((final as Extract<ServerMessage, { type: 'transcript' }>).text);
    }
    expect(finals).toEqual(phrases);
    const types = c.messages().filter((m) => m.type.startsWith('input.') || m.type === 'transcript');
    for (let t = 1; t <= phrases.length; t++) {
      const turn = types.filter((m) => 'turn' in m && m.turn === `t${t}`).map((m) => (m.type === 'transcript' ? (m.final ? 'final' : 'partial') : m.type));
      expect(turn[0]).toBe('input.speech_started');
      expect(turn.filter((x) => x === 'final')).toHaveLength(1);
      expect(turn.at(-1)).toBe('final');
      expect(turn.indexOf('input.speech_stopped')).toBeGreaterThan(0);
    }
    expect(c.messages().some((m) => m.type === 'error')).toBe(false);
    c.close();
    await released();
  }, 240_000);

  it('barge-in: speak.end interrupted arrives within threshold + 150 ms of media time after the onset', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    c.send({ type: 'speak', id: 'long', text: 'This is a long answer that goes on and on. '.repeat(30) });
    c.send({ type: 'speak', id: 'queued', text: 'And then this.', mode: 'enqueue' });
    await c.waitFor(() => (c.frames.some((f) => f.kind === 'audio') ? true : undefined));
    const pcm = await speech.render('turn on the kitchen lights', { leadMs: 400, tailMs: 1_000 });
    const onset = onsetMs(pcm);
    const { interruptSpeechMs, echoGuardExtraMs } = voxline.engine.listenLimits();
    let endedAtMs = NaN;
    let sentMs = 0;
    for (const f of frames(pcm)) {
      await sendInStep(c, f);
      sentMs += (f.length * 1000) / 16_000;
      if (c.messages().some((m) => m.type === 'speak.end' && m.id === 'long')) {
        endedAtMs = sentMs;
        break;
      }
    }
    expect(endedAtMs - onset).toBeLessThanOrEqual(interruptSpeechMs + echoGuardExtraMs + 150);
    expect(endedAtMs - onset).toBeGreaterThanOrEqual(interruptSpeechMs);
    expect((await c.waitForEnd('long')).reason).toBe('interrupted');
    expect((await c.waitForEnd('queued')).reason).toBe('interrupted');
    await new Promise((r) => setTimeout(r, 100));
    assertContract(c.frames);
    const metrics = await (await fetch(url.replace('ws', 'http').replace('/v1/voice', '/metrics'))).text();
    expect(Number(/^voxline_barge_ins_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^voxline_listen_turns_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    c.close();
    await released();
  }, 60_000);

  it('a 150 ms noise burst interrupts nothing and starts no turn', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    c.send({ type: 'speak', id: 'long', text: 'This is a long answer that goes on and on. '.repeat(30) });
    await c.waitFor(() => (c.frames.some((f) => f.kind === 'audio') ? true : undefined));
    let seed = 7;
    const noise = new Int16Array(150 * 16).map(() => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 6000) - 3000);
    const pcm = new Int16Array(silence(300).length + noise.length + silence(1_000).length);
    pcm.set(noise, silence(300).length);
    for (const f of frames(pcm)) await sendInStep(c, f);
    expect(c.messages().some((m) => m.type === 'speak.end')).toBe(false);
    expect(c.messages().some((m) => m.type === 'input.speech_started')).toBe(false);
    c.send({ type: 'stop' });
    expect((await c.waitForEnd('long')).reason).toBe('stopped');
    c.close();
    await released();
  }, 60_000);

  it("echo guard: the assistant's own voice at -20 dB, 100 ms late, interrupts nothing; the user over it does", async () => {
    // Long enough to still be streaming (audible, server side) after the echo: eSpeak makes ~20x real time.
    const text = 'This is a long answer that goes on and on. '.repeat(150);
    const c = await TestVoiceClient.start(url, { listen });
    c.send({ type: 'speak', id: 'long', text });
    await c.waitFor(() => (c.frames.some((f) => f.kind === 'audio') ? true : undefined));
    // What the microphone hears without a user: the assistant's speech, 20 dB down, 100 ms late.
    const echo = await speech.render('This is a long answer that goes on and on. This is a long answer.', { leadMs: 100, tailMs: 200, gainDb: -20 });
    for (const f of frames(echo, 100)) await sendInStep(c, f);
    expect(c.messages().some((m) => m.type === 'speak.end')).toBe(false);
    // The user talks over the echo at full level: that interrupts.
    const user = await speech.render('wait, please stop talking for a moment', { leadMs: 0, tailMs: 800 });
    const mixed = new Int16Array(user.length);
    for (let i = 0; i < user.length; i++) mixed[i] = Math.max(-32768, Math.min(32767, user[i]! + (echo[i % echo.length] ?? 0)));
    for (const f of frames(mixed, 100)) c.ws.send(bytesOf(f));
    expect((await c.waitForEnd('long')).reason).toBe('interrupted');
    c.close();
    await released();
  }, 60_000);
});

describe('listening: the audible tail after a completed utterance', () => {
  it('the echo guard holds while the client still plays a completed utterance; a playback report of its end lifts it', async () => {
    // Not paced to playback (a lead longer than the answer): the answer is sent whole in about a
    // second and completes while the client has most of it still to play, so the tail is long and
    // this test does not race the wall clock. (Paced, the tail is at most the 1 s lead.)
    const listening = await createListening({ micInput: { burstMs: 600_000 } });
    const server = createVoxlineServer({ providers: [espeakProvider({ size: 1 })], listen: listening.options!, playoutLeadMs: 600_000 });
    const serverUrl = `${(await server.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
    try {
      const c = await TestVoiceClient.start(serverUrl, { listen });
      c.send({ type: 'speak', id: 'answer', text: 'This is a complete answer that the client will play for several seconds after it was sent. '.repeat(3) });
      const end = await c.waitForEnd('answer', 30_000);
      expect(end.reason).toBe('completed');
      expect(end.stats.durationMs).toBeGreaterThan(12_000);
      const echo = await speech.render('This is a long answer that goes on and on. This is a long answer.', { leadMs: 100, tailMs: 300, gainDb: -20 });
      // The assistant's voice coming back through the microphone, while the client plays the tail.
      for (const f of frames(echo, 100)) await sendInStep(c, f);
      expect(c.messages().some((m) => m.type === 'input.speech_started')).toBe(false);
      // The client says it played the stream to its end: the same echo is now the user's speech.
      c.send({ type: 'playback', stream: end.stream, playedMs: end.stats.durationMs });
      for (const f of frames(echo, 100)) await sendInStep(c, f);
      expect(c.messages().some((m) => m.type === 'input.speech_started')).toBe(true);
      c.close();
      await settle(() => server.engine.stats().listening.listeners === 0, 5_000, 'listening released');
    } finally {
      await server.close();
    }
  }, 90_000);
});

describe('listening: the Opus uplink', () => {
  it('a phrase sent as one 20 ms Opus packet per frame is heard exactly', async () => {
    const OpusScript = (await import('opusscript')).default;
    const encoder = new OpusScript(16_000, 1, OpusScript.Application.VOIP);
    try {
      const c = await TestVoiceClient.start(url, { listen: { ...listen, format: { encoding: 'opus', sampleRate: 16_000 } } });
      const ready = c.messages()[0] as Extract<ServerMessage, { type: 'session.ready' }>;
      expect(ready.listen?.format.encoding).toBe('opus');
      const pcm = await speech.render('read my messages', { leadMs: 300, tailMs: 1_000 });
      for (const f of frames(pcm, 20)) {
        if (f.length < 320) break;
        c.ws.send(encoder.encode(Buffer.from(f.buffer, f.byteOffset, f.byteLength), 320));
        if (c.ws.bufferedAmount > 0) await new Promise((r) => setTimeout(r, 1));
      }
      const final = await c.waitForMessage<Extract<ServerMessage, { type: 'transcript' }>>((m) => m.type === 'transcript' && m.final, 20_000);
      expect(final.text).toBe('read my messages');
      expect(c.messages().some((m) => m.type === 'error')).toBe(false);
      c.close();
      await released();
    } finally {
      encoder.delete();
    }
  }, 60_000);
});

describe('listening: hostile microphone input through the real mic gate', () => {
  it('odd bytes, a 300 ms frame and a flood faster than real time get typed errors; the session and a neighbour go on, memory bounded', async () => {
    const listening = await createListening();
    const server = createVoxlineServer({ providers: [espeakProvider({ size: 1 })], listen: listening.options! });
    const serverUrl = `${(await server.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
    try {
      const c = await TestVoiceClient.start(serverUrl, { listen });
      const neighbour = await TestVoiceClient.start(serverUrl, { listen });
      c.ws.send(new Uint8Array(641));
      expect(await c.waitForMessage((m) => m.type === 'error' && m.code === 'bad_audio')).toBeTruthy();
      c.ws.send(new Uint8Array(300 * 32));
      await c.waitFor(() => (c.messages().filter((m) => m.type === 'error' && m.code === 'bad_audio').length >= 2 ? true : undefined));
      const heapBefore = process.memoryUsage().heapUsed;
      // 60 s of audio in 100 ms frames, at once: the gate takes about its 2 s burst and drops the rest.
      const frame = new Uint8Array(100 * 32);
      for (let i = 0; i < 600; i++) if (i % 6 === 0) c.ws.send(frame);
      await c.waitFor(() => (c.messages().some((m) => m.type === 'error' && m.code === 'audio_overrun') ? true : undefined));
      c.send({ type: 'ping' });
      await c.waitForMessage((m) => m.type === 'pong');
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
      // The session still speaks, and the neighbour never heard of any of it.
      c.send({ type: 'speak', id: 'after', text: 'Still here.' });
      expect((await c.waitForEnd('after')).reason).toBe('completed');
      neighbour.send({ type: 'speak', id: 'n', text: 'Fine.' });
      expect((await neighbour.waitForEnd('n')).reason).toBe('completed');
      expect(neighbour.messages().some((m) => m.type === 'error')).toBe(false);
      c.close();
      neighbour.close();
    } finally {
      await server.close();
    }
  }, 60_000);
});
