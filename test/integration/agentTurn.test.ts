// The agent turn end to end with real parts over a real WebSocket on 127.0.0.1: microphone audio
// (the embedded voice speaking a phrase) through the mic gate, the WebRTC VAD and PocketSphinx;
// the reply written by the chat emulator through the real groq-sdk (baseURL only) and spoken by
// the embedded voice, paced to the client's playback; barge-in over the reply; every chat fault.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { interruptedNote } from '../../src/agent/conversation.js';
import { withDeadlines } from '../../src/agent/deadlines.js';
import { groqChatModel } from '../../src/agent/openAiChatModel.js';
import { ChatEmulator, type ChatFault } from '../../src/emulators/chatEmulator.js';
import type { VoxlineServer } from '../../src/server/voxlineServer.js';
import { sendMic, startListeningServer, type ListeningServer } from '../support/listeningServer.js';
import type { SpeechRenderer } from '../support/speechAudio.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

const phrases = ['what time is it', 'what is the weather today', 'stop the music', 'call my mother', 'good morning'];
const key = 'agent-test-key-41c9';
const instructions = 'Answer briefly.';

let emulator: ChatEmulator;
let server: ListeningServer;
let voxline: VoxlineServer;
let url: string;
let speech: SpeechRenderer;

beforeAll(async () => {
  emulator = new ChatEmulator({ apiKey: key });
  await emulator.listen();
  const model = withDeadlines(groqChatModel({ apiKey: key, baseURL: emulator.url, model: 'llama-3.1-8b-instant' }), {
    firstTokenMs: 1_500,
    betweenTokensMs: 1_000,
    wholeReplyMs: 20_000,
  });
  server = await startListeningServer({}, { agent: { model } });
  ({ voxline, url, speech } = server);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await emulator?.close();
});

beforeEach(() => {
  emulator.faults.clear();
  emulator.replyWith(null);
  emulator.configure({ firstTokenDelayMs: 0, tokenDelayMs: 5, slowFirstTokenMs: 30_000, retryAfterSeconds: 1 });
});

const session = { listen: { format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, language: 'en', phrases }, agent: { instructions } };

type TurnEndMessage = Extract<ServerMessage, { type: 'turn.end' }>;

/** The user says `phrase` (100 ms frames, faster than real time within the frame budget, then a second of silence). */
async function say(c: TestVoiceClient, phrase: string): Promise<void> {
  await sendMic(c.ws, await speech.render(phrase, { leadMs: 300, tailMs: 1_000 }));
}

const turnEnd = (c: TestVoiceClient, turn: string, timeoutMs = 20_000) =>
  c.waitForMessage<TurnEndMessage>((m) => m.type === 'turn.end' && m.turn === turn, timeoutMs);

const replyText = (c: TestVoiceClient, turn: string) =>
  c
    .messages()
    .filter((m): m is Extract<ServerMessage, { type: 'reply.text' }> => m.type === 'reply.text' && m.turn === turn)
    .map((m) => m.text)
    .join('');

/** Position of the first message matching, in the client's log (-1 if none). */
const at = (c: TestVoiceClient, pred: (m: ServerMessage) => boolean) => c.messages().findIndex(pred);

async function released() {
  await server.released(() => voxline.engine.stats().agent.replies === 0 && voxline.engine.stats().upstreamJobs === 0);
  expect(emulator.stats().active).toBe(0);
}

describe('the agent turn with real parts', () => {
  it('a full turn: mic audio → final transcript → reply written and spoken as reply:t1 → one turn.end completed, heard whole', async () => {
    const reply = 'It is noon. Have a nice day.';
    emulator.reply(reply);
    const c = await TestVoiceClient.start(url, session);
    expect(c.messages()[0]).toMatchObject({ type: 'session.ready', protocol: 2 });
    await say(c, 'what time is it');
    const end = await turnEnd(c, 't1');
    expect(end).toEqual({ type: 'turn.end', turn: 't1', status: 'completed', heard: reply });
    expect(replyText(c, 't1')).toBe(reply);
    const accepted = c.messages().find((m) => m.type === 'speak.accepted' && m.id === 'reply:t1') as Extract<ServerMessage, { type: 'speak.accepted' }>;
    expect(c.audioOf(accepted.stream).length).toBeGreaterThan(5);
    // In order: what was heard, what is written, the utterance, its one end, then the turn's.
    const final = at(c, (m) => m.type === 'transcript' && m.final && m.turn === 't1');
    expect((c.messages()[final] as Extract<ServerMessage, { type: 'transcript' }>).text).toBe('what time is it');
    expect(final).toBeLessThan(at(c, (m) => m.type === 'reply.text'));
    expect(at(c, (m) => m.type === 'reply.text')).toBeLessThan(at(c, (m) => m.type === 'speak.accepted'));
    expect(at(c, (m) => m.type === 'speak.end' && m.id === 'reply:t1' && m.reason === 'completed')).toBeLessThan(at(c, (m) => m.type === 'turn.end'));
    expect(c.messages().filter((m) => m.type === 'turn.end')).toHaveLength(1);
    // The model was asked with the instructions and exactly what was heard.
    expect(emulator.requests.at(-1)!.messages).toEqual([
      { role: 'system', content: instructions },
      { role: 'user', content: 'what time is it' },
    ]);
    assertContract(c.frames);
    const metrics = await (await fetch(url.replace('ws', 'http').replace('/v1/voice', '/metrics'))).text();
    expect(Number(/^voxline_agent_turns_total\{status="completed"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(/^voxline_voice_to_voice_seconds_count (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    c.close();
    await released();
  }, 60_000);

  it('barge-in mid-reply: the reply ends interrupted, heard is a shorter prefix, and the next request holds only what was heard', async () => {
    const reply =
      'The weather today is sunny and warm. In the afternoon a light wind comes from the sea. ' +
      'In the evening the sky stays clear and the temperature drops slowly. Tomorrow will be much the same, with some clouds.';
    emulator.reply(reply, 'All right, I will stop.');
    const c = await TestVoiceClient.start(url, session);
    await say(c, 'what is the weather today');
    const accepted = await c.waitForMessage<Extract<ServerMessage, { type: 'speak.accepted' }>>((m) => m.type === 'speak.accepted' && m.id === 'reply:t1');
    // A client that plays in real time and says so.
    await c.waitFor(() => (c.audioOf(accepted.stream).length > 0 ? true : undefined));
    const started = Date.now();
    const reporter = setInterval(() => c.send({ type: 'playback', stream: accepted.stream, playedMs: Date.now() - started }), 100);
    try {
      await new Promise((r) => setTimeout(r, 3_500));
      expect(c.messages().some((m) => m.type === 'speak.end')).toBe(false); // still playing, paced to playback
      await say(c, 'stop the music');
      const end = await turnEnd(c, 't1');
      expect((await c.waitForEnd('reply:t1')).reason).toBe('interrupted');
      expect(end.status).toBe('interrupted');
      expect(end.heard.length).toBeGreaterThan(0);
      expect(end.heard.length).toBeLessThan(reply.length);
      expect(reply.startsWith(end.heard)).toBe(true);
      // The user's words are answered next, knowing only what was heard of the first reply.
      expect((await turnEnd(c, 't2')).status).toBe('completed');
      expect(emulator.requests.at(-1)!.messages).toEqual([
        { role: 'system', content: instructions },
        { role: 'user', content: 'what is the weather today' },
        { role: 'assistant', content: `${end.heard}${interruptedNote}` },
        { role: 'user', content: 'stop the music' },
      ]);
    } finally {
      clearInterval(reporter);
    }
    const ends = c.messages().filter((m) => m.type === 'turn.end');
    expect(ends.map((m) => (m as TurnEndMessage).turn)).toEqual(['t1', 't2']);
    assertContract(c.frames);
    c.close();
    await released();
  }, 90_000);

  it('every chat fault ends its turn once, failed with a model code; the next turn of the same session completes', async () => {
    emulator.configure({ slowFirstTokenMs: 5_000 });
    const faults: ChatFault[] = ['slow_first_token', 'stall_mid_stream', 'rate_limited', 'server_error', 'cut_stream', 'malformed_chunk'];
    // Replies by what was said: a refused request (429, 500) consumes no queued reply.
    emulator.replyWith(({ messages }) =>
      messages.at(-1)?.content.endsWith('good morning') ? 'Good morning to you.' : 'This reply is long enough to be cut somewhere in its middle part. It has two sentences.',
    );
    const c = await TestVoiceClient.start(url, session);
    let turn = 0;
    for (const fault of faults) {
      emulator.faults.push(fault);
      await say(c, 'call my mother');
      const failed = await turnEnd(c, `t${++turn}`);
      expect(failed.status, fault).toBe('failed');
      expect(failed.error?.code, fault).toMatch(/^model_/);
      await say(c, 'good morning');
      const ok = await turnEnd(c, `t${++turn}`);
      expect(ok, fault).toEqual({ type: 'turn.end', turn: `t${turn}`, status: 'completed', heard: 'Good morning to you.' });
    }
    const ends = c.messages().filter((m): m is TurnEndMessage => m.type === 'turn.end');
    expect(ends.map((e) => e.turn)).toEqual(Array.from({ length: turn }, (_, i) => `t${i + 1}`));
    assertContract(c.frames);
    c.close();
    await released();
  }, 180_000);

  it('a session that asks for the agent without listening is refused at the handshake; an unknown agent voice too', async () => {
    for (const [start, code] of [
      [{ agent: {} }, 'bad_request'],
      [{ ...session, agent: { voice: 'no-such-voice' } }, 'unknown_voice'],
    ] as const) {
      const c = await TestVoiceClient.connect(url);
      c.send({ type: 'session.start', ...start });
      expect(await c.waitForMessage((m) => m.type === 'error')).toMatchObject({ code });
      expect(await c.waitForClose()).toBe(1008);
    }
    await released();
  }, 30_000);
});
