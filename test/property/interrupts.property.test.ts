// STOPs and new messages at random points (seeded) while audio streams, against the real
// server. Invariants: every accepted utterance ends exactly once, no audio of a stream
// follows its end, seq numbers have no gap, and nothing is left when the client leaves.
// FC_IO_RUNS runs (default 30); a failure prints its seed and path.
import { fc } from '@fast-check/vitest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { settle } from '../support/settle.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

let emu: GroqEmulator;
let voxline: VoxlineServer;
let url: string;

beforeAll(async () => {
  // A quarter of real time: long enough to land STOPs and interrupts mid-stream.
  emu = new GroqEmulator({ apiKey: 'k', realtime: 0.25 });
  voxline = createVoxlineServer({ providers: [groqProvider({ apiKey: 'k', baseURL: await emu.listen() })] });
  url = `${(await voxline.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
});

afterAll(async () => {
  await voxline?.close();
  await emu?.close();
});

const action = fc.oneof(
  fc.record({ kind: fc.constant('speak' as const), mode: fc.constantFrom('interrupt', 'enqueue'), words: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ kind: fc.constant('stop' as const), targeted: fc.boolean() }),
  fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 60 }) }),
);

it('random STOPs and interrupts while streaming: one end per utterance, no audio after it', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 12 }), async (actions) => {
      const c = await TestVoiceClient.start(url);
      const ids: string[] = [];
      for (const a of actions) {
        if (a.kind === 'speak') {
          const id = `u${ids.length}`;
          ids.push(id);
          c.send({ type: 'speak', id, mode: a.mode, text: `${'word '.repeat(a.words)}end.` });
        } else if (a.kind === 'stop') {
          c.send(a.targeted && ids.length > 0 ? { type: 'stop', id: ids[ids.length - 1] } : { type: 'stop' });
        } else {
          await new Promise((r) => setTimeout(r, a.ms));
        }
      }
      // Whatever is still playing is stopped, so every accepted utterance ends.
      c.send({ type: 'stop' });
      await c.waitFor(() => {
        const accepted = c.messages().filter((m) => m.type === 'speak.accepted').length;
        const ended = c.messages().filter((m) => m.type === 'speak.end').length;
        const refused = c.messages().filter((m) => m.type === 'error').length;
        return accepted === ended && accepted + refused === ids.length ? true : undefined;
      }, 10_000);
      assertContract(c.frames);
      c.close();
      await settle(() => voxline.engine.stats().sessions === 0 && voxline.engine.stats().upstreamJobs === 0 && emu.stats().active === 0, 5_000, 'release');
      const s = voxline.engine.stats();
      expect(s.utterancesAccepted).toBe(s.utterancesEnded);
    }),
    { numRuns: Number(process.env.FC_IO_RUNS ?? 30) },
  );
}, 600_000);
