// Fuzzing a live server with fast-check: random bytes, JSON of the wrong shape, huge
// strings, deep nesting, control characters, and valid messages in wrong orders.
// Invariants:
//   1. the server never crashes (an uncaught exception would fail this worker);
//   2. every frame the codec rejects gets the contract's `error`, or the connection closes
//      with 1008 (handshake) or 1009 (too large);
//   3. a well-behaved session beside the fuzzer sees no error and keeps completing utterances;
//   4. every fuzzed connection is released (only the neighbour's session is left).
// FC_IO_RUNS runs (default 100); a failure prints its seed and path for FC_SEED / FC_PATH.
import { fc } from '@fast-check/vitest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { ProtocolError, parseClientMessage } from '../../src/protocol/clientMessages.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { settle } from '../support/settle.js';
import { TestVoiceClient } from '../support/voiceClient.js';

const maxFrameBytes = 64 * 1024;
let emu: GroqEmulator;
let voxline: VoxlineServer;
let url: string;
let neighbour: TestVoiceClient;

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'k' });
  voxline = createVoxlineServer({
    providers: [groqProvider({ apiKey: 'k', baseURL: await emu.listen() })],
    maxFrameBytes,
    abuse: { messagesPerSecond: 100_000, messageBurst: 100_000 },
  });
  url = `${(await voxline.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
  neighbour = await TestVoiceClient.start(url);
});

afterAll(async () => {
  neighbour?.close();
  await voxline?.close();
  await emu?.close();
});

type Frame = { kind: 'text'; data: string } | { kind: 'binary'; data: Uint8Array };

const validMessage = fc.oneof(
  fc.record({ type: fc.constant('session.start') }),
  fc.record({ type: fc.constant('speak'), id: fc.string({ minLength: 1, maxLength: 8 }).filter((s) => /^[\x20-\x7e]+$/.test(s)), text: fc.string({ maxLength: 40 }) }),
  fc.record({ type: fc.constant('stop') }),
  fc.record({ type: fc.constant('ping') }),
);

const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((data) => ({ kind: 'binary' as const, data })),
  fc.string({ maxLength: 200 }).map((data) => ({ kind: 'text' as const, data })),
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ kind: 'text' as const, data: JSON.stringify(v) ?? 'null' })),
  fc.record({ type: fc.constantFrom('speak', 'stop', 'session.start', 'ping', 'nope'), id: fc.anything(), text: fc.anything(), mode: fc.anything() }).map((v) => ({
    kind: 'text' as const,
    data: JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x)) ?? '{}',
  })),
  fc.integer({ min: 1, max: 50_000 }).map((n) => ({ kind: 'text' as const, data: '['.repeat(n) + ']'.repeat(n) })),
  fc.string({ unit: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)), maxLength: 50 }).map((s) => ({
    kind: 'text' as const,
    data: JSON.stringify({ type: 'speak', id: 'ctl', text: s }),
  })),
  fc.constantFrom(70_000, 200_000).map((n) => ({ kind: 'text' as const, data: JSON.stringify({ type: 'speak', id: 'big', text: 'x'.repeat(n) }) })),
  validMessage.map((m) => ({ kind: 'text' as const, data: JSON.stringify(m) })),
);

/** Send one frame and wait until the server has answered everything it will answer for it. */
async function exchange(c: TestVoiceClient, f: Frame): Promise<{ errors: number; closed: number | null }> {
  const before = c.messages().filter((m) => m.type === 'error').length;
  const pongs = c.messages().filter((m) => m.type === 'pong').length;
  if (f.kind === 'binary') c.ws.send(f.data, { binary: true });
  else c.ws.send(f.data);
  // A ping after it: its pong (or a close) marks the end of this frame's answers.
  if (c.ws.readyState === WebSocket.OPEN) c.send({ type: 'ping' });
  await c.waitFor(() => (c.closeCode !== null || c.messages().filter((m) => m.type === 'pong').length > pongs ? true : undefined), 5_000);
  return { errors: c.messages().filter((m) => m.type === 'error').length - before, closed: c.closeCode };
}

it('arbitrary frames at a live server: typed errors or contract closes, no crash, no effect on a neighbour', async () => {
  let round = 0;
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(frame, { minLength: 1, maxLength: 8 }), async (start, frames) => {
      round++;
      const c = await TestVoiceClient.connect(url);
      try {
        if (start) {
          c.send({ type: 'session.start' });
          await c.waitForMessage((m) => m.type === 'session.ready');
        }
        for (const f of frames) {
          const size = f.kind === 'binary' ? f.data.length : Buffer.byteLength(f.data);
          const rejected = f.kind === 'binary' || parseClientMessage(f.data) instanceof ProtocolError;
          const { errors, closed } = await exchange(c, f);
          if (size > maxFrameBytes) expect(closed).toBe(1009);
          else if (rejected) expect(errors > 0 || closed === 1008, `frame ${f.data.slice(0, 80)}`).toBe(true);
          if (closed !== null) {
            expect([1008, 1009]).toContain(closed);
            break;
          }
        }
      } finally {
        c.ws.terminate();
      }
      // The neighbour speaks once per round and never sees an error.
      neighbour.send({ type: 'speak', id: `n${round}`, text: 'The neighbour is fine.' });
      expect((await neighbour.waitForEnd(`n${round}`)).reason).toBe('completed');
      await settle(() => voxline.engine.stats().sessions === 1, 3_000, 'fuzzed connection released');
    }),
    { numRuns: Number(process.env.FC_IO_RUNS ?? 100) },
  );
  expect(neighbour.messages().filter((m) => m.type === 'error')).toEqual([]);
}, 600_000);
