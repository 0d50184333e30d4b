// Listening through Groq Whisper (the real groq-sdk against the emulator's transcription
// endpoint) over a real WebSocket session: with each fault the turn still ends once (the error,
// then an empty final) and the next turn of the same session is heard.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import type { UpstreamFault } from '../../src/emulators/faults.js';
import { GroqWhisperRecognizer } from '../../src/listening/groqWhisper.js';
import { createListening } from '../../src/listening/listening.js';
import { espeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { bytesOf } from '../support/listeningStandIns.js';
import { settle } from '../support/settle.js';
import { frames, speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';
import { TestVoiceClient } from '../support/voiceClient.js';

let emu: GroqEmulator;
let voxline: VoxlineServer;
let url: string;
let speech: SpeechRenderer;
let utterance: Int16Array;

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'test-key' });
  const baseURL = await emu.listen();
  const whisper = new GroqWhisperRecognizer({ apiKey: 'test-key', baseURL, requestTimeoutMs: 1_500 });
  const listening = await createListening({ offline: false, recognizers: [whisper], micInput: { burstMs: 600_000 } });
  voxline = createVoxlineServer({ providers: [espeakProvider({ size: 1 })], listen: listening.options! });
  url = `${(await voxline.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
  speech = await speechRenderer();
  utterance = await speech.render('what time is it', { leadMs: 300, tailMs: 1_000 });
}, 60_000);

afterAll(async () => {
  await speech?.close();
  await voxline?.close();
  await emu?.close();
});

const listen = { format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en' };
type Transcript = Extract<ServerMessage, { type: 'transcript' }>;

async function turn(c: TestVoiceClient, id: string): Promise<Transcript> {
  for (const f of frames(utterance, 100)) c.ws.send(bytesOf(f));
  return c.waitForMessage<Transcript>((m) => m.type === 'transcript' && m.final && m.turn === id, 15_000);
}

const faults: Array<[UpstreamFault, string]> = [
  ['rate_limited', 'recognizer_busy'],
  ['server_error', 'recognizer_failed'],
  ['premature_close', 'recognizer_failed'],
  ['error_mid_stream', 'recognizer_failed'],
  ['malformed', 'recognizer_failed'],
  ['stall_before_first_byte', 'recognizer_timeout'],
  ['stall_mid_stream', 'recognizer_timeout'],
];

describe('listening through Groq Whisper, with faults', () => {
  it.each(faults)('%s: the turn ends once (%s, empty final), the next turn is heard', async (fault, code) => {
    const c = await TestVoiceClient.start(url, { listen });
    emu.transcriptionFaults.push(fault);
    emu.transcripts.push('what time is it');
    const first = await turn(c, 't1');
    expect(first.text).toBe('');
    const errors = c.messages().filter((m) => m.type === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code });
    const second = await turn(c, 't2');
    expect(second.text).toBe('what time is it');
    const finals = c.messages().filter((m) => m.type === 'transcript' && m.final);
    expect(finals.map((m) => (m as Transcript).turn)).toEqual(['t1', 't2']);
    c.close();
    await settle(() => voxline.engine.stats().listening.recognitionJobs === 0 && voxline.engine.stats().sessions === 0, 5_000, 'released');
  }, 30_000);
});
