// Random fault schedules against the real provider adapters and their emulators, over
// real sockets. Invariants, for every schedule:
//   1. every accepted utterance ends exactly once, and no audio of it follows its end;
//   2. it ends with the reason its fault calls for, or `stopped` when a STOP reached it first;
//   3. the session keeps serving: the next utterance of the schedule is accepted and ends;
//   4. nothing is left after each utterance: no engine job, no open upstream request, no
//      upstream context (one the service never confirmed is retired with its connection).
// Runs FC_IO_RUNS schedules (default 25; each is real I/O). A failure prints its seed and
// path; rerun with FC_SEED / FC_PATH to reproduce it.
import { fc } from '@fast-check/vitest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ElevenLabsEmulator } from '../../src/emulators/elevenLabsEmulator.js';
import { upstreamFaults, type UpstreamFault } from '../../src/emulators/faults.js';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { elevenLabsProvider } from '../../src/providers/elevenlabs/elevenLabsProvider.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { settle } from '../support/settle.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

const faultReason: Record<UpstreamFault, string> = {
  premature_close: 'failed',
  no_final_marker: 'failed',
  error_mid_stream: 'failed',
  stall_before_first_byte: 'timeout',
  stall_mid_stream: 'timeout',
  rate_limited: 'failed',
  server_error: 'failed',
  unauthorized: 'failed',
  malformed: 'failed',
  huge_frame: 'failed',
  slow_trickle: 'completed',
};

let groqEmu: GroqEmulator;
let elevenEmu: ElevenLabsEmulator;
let voxline: VoxlineServer;
let url: string;
let marks = 0;

beforeAll(async () => {
  // retry-after 0: a 429 does not close the gate, so every step's outcome is its own.
  groqEmu = new GroqEmulator({ apiKey: 'k', retryAfterSeconds: 0 });
  elevenEmu = new ElevenLabsEmulator({ apiKey: 'k' });
  voxline = createVoxlineServer({
    providers: [
      groqProvider({ apiKey: 'k', baseURL: await groqEmu.listen() }),
      elevenLabsProvider({ apiKey: 'k', baseURL: await elevenEmu.listen(), closeGraceMs: 200, inactivityTimeoutS: 11 }),
    ],
    // 800 ms: an upstream's refusal (a 401 over a fresh WebSocket) must beat the first-audio deadline on a loaded 2-core machine.
    limits: { firstAudioTimeoutMs: 800, chunkGapTimeoutMs: 800, releaseTimeoutMs: 1_500 },
    circuitBreaker: { failureThreshold: 1_000_000 },
  });
  url = `${(await voxline.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
});

afterAll(async () => {
  await voxline?.close();
  await groqEmu?.close();
  await elevenEmu?.close();
});

const upstreamIdle = () =>
  voxline.engine.stats().upstreamJobs === 0 && groqEmu.stats().active === 0 && elevenEmu.stats().contexts === 0;

const step = fc.record({
  voice: fc.constantFrom('groq:hannah', 'groq:sultan', 'elevenlabs:rachel', 'elevenlabs:adam'),
  fault: fc.option(fc.constantFrom(...upstreamFaults), { freq: 2 }),
  stopAfterMs: fc.option(fc.integer({ min: 0, max: 40 }), { freq: 3 }),
  text: fc.constantFrom('Short one.', 'Two sentences here. And the second one is a little longer.', 'مرحبا بكم.'),
});

it('random upstream fault schedules: one end per utterance, the right reason, nothing left', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 5 }), async (steps) => {
      groqEmu.faults.clear();
      elevenEmu.faults.clear();
      const c = await TestVoiceClient.start(url);
      try {
        for (const [i, s] of steps.entries()) {
          const emu = s.voice.startsWith('groq') ? groqEmu : elevenEmu;
          const id = `u${i}`;
          // Faults are tied to the utterance's text: a cancelled request still in flight must not take them.
          const marker = `Mark ${++marks}.`;
          if (s.fault) emu.faults.when(marker, s.fault);
          c.send({ type: 'speak', id, text: `${marker} ${s.text}`, voice: s.voice });
          if (s.stopAfterMs !== null) {
            await new Promise((r) => setTimeout(r, s.stopAfterMs!));
            c.send({ type: 'stop', id });
          }
          const end = await c.waitForEnd(id, 10_000);
          const expected = s.fault ? faultReason[s.fault] : 'completed';
          const why = JSON.stringify({ step: i, end });
          if (s.stopAfterMs !== null) expect([expected, 'stopped'], why).toContain(end.reason);
          else expect(end.reason, why).toBe(expected);
          // A fault the STOP kept from being used must not linger, and what a stopped utterance
          // left upstream (a context still speaking, a connection about to fail) must be gone
          // before the next step, or its fault would be the next utterance's.
          emu.faults.clear();
          await settle(() => upstreamIdle(), 3_000, `upstream release after step ${i}`);
        }
        const ends = c.messages().filter((m) => m.type === 'speak.end');
        expect(ends).toHaveLength(steps.length);
        assertContract(c.frames);
      } finally {
        c.close();
      }
      await settle(() => upstreamIdle(), 3_000, 'upstream release');
    }),
    { numRuns: Number(process.env.FC_IO_RUNS ?? 25), endOnFailure: true },
  );
  // Idle upstream connections are closed by the adapter.
  await settle(() => elevenEmu.stats().connections === 0, 5_000, 'elevenlabs connections closed');
}, 600_000);
