// Logs, metrics and the live inspector of a real server, and what they must never carry:
// utterance text and credentials.
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { createLogger, logEngine } from '../../src/observability/engineLog.js';
import { redact } from '../../src/observability/inspector.js';
import { EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { bytesOf, levelVad, pcmMicInput, ScriptedRecognizer, tone } from '../support/listeningStandIns.js';
import { settle } from '../support/settle.js';
import { TestVoiceClient } from '../support/voiceClient.js';

const secretText = 'SECRET-TEXT-9876';
const token = 'TOKEN-XYZ-not-for-logs';
let emu: GroqEmulator;
let voxline: VoxlineServer;
let base: string;
let ws: string;
let logs = '';
let inspection = '';
const sse = new AbortController();

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'upstream' });
  voxline = createVoxlineServer({
    providers: [new EspeakProvider({ size: 1 }), groqProvider({ apiKey: 'upstream', baseURL: await emu.listen() })],
    apiKeys: [token],
    inspect: true,
  });
  const sink = new PassThrough();
  sink.on('data', (chunk: Buffer) => (logs += chunk.toString('utf8')));
  logEngine(voxline.engine, createLogger('trace', sink));
  base = (await voxline.listen(0, '127.0.0.1')).url;
  ws = `${base.replace('http', 'ws')}/v1/voice`;
  await voxline.engine.ready();
  // Follow the inspection stream for the whole file.
  const response = await fetch(`${base}/inspect/events`, { signal: sse.signal });
  expect(response.headers.get('content-type')).toBe('text/event-stream');
  void (async () => {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        inspection += decoder.decode(value, { stream: true });
      }
    } catch {
      /* aborted at the end */
    }
  })();

  // One session with a completed utterance, a STOP and a provider failure.
  const c = await TestVoiceClient.start(ws, { token });
  c.send({ type: 'speak', id: 'done', text: `${secretText} is spoken in full.`, voice: 'groq:troy' });
  await c.waitForEnd('done');
  emu.configure({ realtime: 1 });
  c.send({ type: 'speak', id: 'stopped', text: `${secretText} will be stopped before the end of this sentence.`, voice: 'groq:troy' });
  await c.waitFor(() => c.frames.find((f) => f.kind === 'audio' && f.stream === 2));
  c.send({ type: 'stop' });
  await c.waitForEnd('stopped');
  emu.configure({ realtime: 0 });
  emu.faults.push('server_error');
  c.send({ type: 'speak', id: 'failed', text: `${secretText} fails upstream.`, voice: 'groq:troy' });
  await c.waitForEnd('failed');
  c.close();
  await settle(() => voxline.engine.stats().sessions === 0);
  await settle(() => inspection.includes('"status":"ended"'));
}, 60_000);

afterAll(async () => {
  sse.abort();
  await voxline?.close();
  await emu?.close();
});

describe('structured logs (pino)', () => {
  const lines = () => logs.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

  it('one JSON line per lifecycle event, with session and utterance ids', () => {
    const events = lines().map((l) => l.event);
    for (const e of ['session.start', 'utterance.accepted', 'utterance.end', 'provider.error', 'session.end']) expect(events).toContain(e);
    const ends = lines().filter((l) => l.event === 'utterance.end');
    expect(ends.map((l) => [l.utteranceId, l.reason])).toEqual([
      ['done', 'completed'],
      ['stopped', 'stopped'],
      ['failed', 'failed'],
    ]);
    for (const l of ends) expect(l.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ends[0]).toMatchObject({ firstAudioMs: expect.any(Number), durationMs: expect.any(Number) });
  });

  it('carries no text content and no credential, even at trace level', () => {
    expect(logs).not.toContain(secretText);
    expect(logs).not.toContain(token);
  });
});

describe('prometheus metrics at /metrics', () => {
  it('exposes the lifecycle, latency, provider and worker figures', async () => {
    const response = await fetch(`${base}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await response.text();
    const value = (line: RegExp) => Number(text.match(line)?.[1] ?? NaN);
    expect(value(/^voxline_sessions (\d+)$/m)).toBe(0);
    expect(value(/^voxline_utterances_live (\d+)$/m)).toBe(0);
    expect(value(/^voxline_utterances_ended_total\{reason="completed"\} (\d+)$/m)).toBe(1);
    expect(value(/^voxline_utterances_ended_total\{reason="stopped"\} (\d+)$/m)).toBe(1);
    expect(value(/^voxline_utterances_ended_total\{reason="failed"\} (\d+)$/m)).toBe(1);
    expect(value(/^voxline_first_audio_seconds_count (\d+)$/m)).toBe(2);
    expect(value(/^voxline_stop_to_end_seconds_count (\d+)$/m)).toBe(1);
    expect(value(/^voxline_provider_errors_total\{provider="groq",code="provider_unavailable"\} (\d+)$/m)).toBe(1);
    expect(value(/^voxline_circuit_state\{provider="groq"\} (\d+)$/m)).toBe(0);
    expect(value(/^voxline_audio_bytes_sent_total (\d+)$/m)).toBeGreaterThan(10_000);
    expect(value(/^voxline_synth_workers\{provider="espeak",state="warm"\} (\d+)$/m)).toBe(1);
    expect(text).toMatch(/^voxline_backpressure_pauses_total \d+$/m);
    expect(value(/^voxline_held_audio_bytes (\d+)$/m)).toBe(0); // nothing held once every session ended
    expect(value(/^voxline_provider_busy_refusals_total\{provider="espeak"\} (\d+)$/m)).toBe(0);
    expect(text).toMatch(/^voxline_process_cpu_seconds_total /m);
    expect(text).not.toContain(secretText);
  });
});

describe('live inspector', () => {
  it('streams every session’s states and event names', () => {
    const records = inspection
      .split('\n\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => JSON.parse(l.slice(6)) as { kind: string; chart?: string; state?: string; event?: string });
    const states = records.filter((r) => r.kind === 'state').map((r) => r.state);
    for (const s of ['handshake', 'idle', 'active.live.connecting.synthesizing', 'active.live.streaming.flowing', 'ended']) expect(states).toContain(s);
    const charted = records.filter((r) => r.kind === 'state').map((r) => `${r.chart}:${r.state}`);
    for (const s of ['connection:handshake', 'connection:open.speech.speaking.serving', 'connection:ended', 'speaker:idle', 'speaker:active.live.streaming.flowing']) expect(charted).toContain(s);
    const events = records.filter((r) => r.kind === 'event').map((r) => r.event);
    for (const e of ['START', 'SPEAK', 'STOP', 'UPSTREAM_AUDIO', 'UPSTREAM_ERROR', 'CLIENT_GONE']) expect(events).toContain(e);
  });

  it('never carries utterance text or a token', () => {
    expect(inspection.length).toBeGreaterThan(1_000);
    expect(inspection).not.toContain(secretText);
    expect(inspection).not.toContain(token);
  });

  it('redacts at the source: an event is reduced to its type', () => {
    const actorRef = { id: 'x', _parent: undefined };
    const record = redact('s1', {
      type: '@xstate.event',
      actorRef,
      sourceRef: undefined,
      event: { type: 'SPEAK', request: { id: 'u', text: secretText }, token },
      rootId: 'x',
    } as unknown as InspectionEvent);
    expect(record).toEqual({ kind: 'event', sessionId: 's1', at: expect.any(Number), event: 'SPEAK', to: 'session' });
  });

  it('serves the page and the three statecharts it highlights (connection, speaker, listener)', async () => {
    const page = await (await fetch(`${base}/inspect`)).text();
    expect(page).toContain('EventSource');
    expect(page).toContain('/inspect/listener.svg');
    const connection = await (await fetch(`${base}/inspect/statechart.svg`)).text();
    expect(connection).toContain('id="state.open.speech.speaking.serving"');
    const speaker = await (await fetch(`${base}/inspect/speaker.svg`)).text();
    expect(speaker).toContain('id="state.active.live.streaming.flowing"');
    const listener = await (await fetch(`${base}/inspect/listener.svg`)).text();
    expect(listener).toContain('id="state.turn.speaking.voiced"');
  });

  it("shows a listening session's listener chart: its states, and VOICE only where it moved them; no transcript text", async () => {
    const secretWords = 'SECRET-TRANSCRIPT-4321';
    const listening = createVoxlineServer({
      providers: [groqProvider({ apiKey: 'upstream', baseURL: emu.url })],
      inspect: true,
      listen: { recognizers: [new ScriptedRecognizer('scripted', ['en'], () => ({ text: secretWords }))], createVad: () => levelVad(), createMicInput: () => pcmMicInput() },
    });
    const httpUrl = (await listening.listen(0, '127.0.0.1')).url;
    const stream = new AbortController();
    let seen = '';
    try {
      const response = await fetch(`${httpUrl}/inspect/events`, { signal: stream.signal });
      void (async () => {
        const reader = response.body!.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            seen += decoder.decode(value, { stream: true });
          }
        } catch {
          /* aborted */
        }
      })();
      const c = await TestVoiceClient.start(`${httpUrl.replace('http', 'ws')}/v1/voice`, { listen: { format: { encoding: 'pcm_s16le', sampleRate: 16_000 } } });
      // 600 ms of speech then 1 s of silence in 20 ms frames: a turn, endpointed, its final.
      const pcm = new Int16Array(1_600 * 16);
      pcm.set(tone(600));
      const frameCount = pcm.length / 320;
      for (let i = 0; i < pcm.length; i += 320) c.ws.send(bytesOf(pcm.subarray(i, i + 320)));
      await c.waitForMessage((m) => m.type === 'transcript' && m.final);
      c.close();
      await settle(() => listening.engine.stats().sessions === 0);
      await settle(() => seen.includes('"status":"ended"'));
      const records = seen
        .split('\n\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => JSON.parse(l.slice(6)) as { kind: string; chart?: string; state?: string; event?: string; to?: string });
      const listenerStates = records.filter((r) => r.kind === 'state' && r.chart === 'listener').map((r) => r.state);
      expect(listenerStates).toEqual(['quiet', 'turn.starting.voiced', 'turn.speaking.voiced', 'turn.speaking.unvoiced', 'turn.finalizing', 'quiet']);
      const voices = records.filter((r) => r.kind === 'event' && r.event === 'VOICE');
      // Only the frames that moved the listener: the onset and the first silent frame (the rest are timers).
      expect(voices).toHaveLength(2);
      expect(voices.every((r) => r.to === 'listener')).toBe(true);
      expect(frameCount).toBe(80);
      const listenerEvents = records.filter((r) => r.kind === 'event' && r.to === 'listener').map((r) => r.event);
      expect(listenerEvents).toContain('RECOGNITION_FINAL');
      expect(seen).not.toContain(secretWords);
    } finally {
      stream.abort();
      await listening.close();
    }
  });

  it('is off unless asked for, and /metrics can be turned off', async () => {
    const plain = createVoxlineServer({ providers: [groqProvider({ apiKey: 'upstream', baseURL: emu.url })], metrics: false });
    const { url } = await plain.listen(0, '127.0.0.1');
    try {
      expect((await fetch(`${url}/inspect`)).status).toBe(404);
      expect((await fetch(`${url}/inspect/events`)).status).toBe(404);
      expect((await fetch(`${url}/metrics`)).status).toBe(404);
    } finally {
      await plain.close();
    }
  });
});
