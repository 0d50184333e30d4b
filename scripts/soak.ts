// `npm run soak -- --minutes N [--sessions S]`: many sessions speaking, stopping and
// interrupting for N minutes against a server in this process and the Groq emulator at
// real-time pace. Prints resource use every 10 s and fails (exit 1) if it grows: heap after
// GC, RSS, handles, sessions and upstream jobs must come back to where they were after the
// warm-up. Outside the default test command; bounded in time and count.
import v8 from 'node:v8';
import vm from 'node:vm';
import { parseArgs } from 'node:util';
import { GroqEmulator } from '../src/emulators/groqEmulator.js';
import { groqProvider } from '../src/providers/groq/groqProvider.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
import { TestVoiceClient } from '../test/support/voiceClient.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const { values } = parseArgs({ options: { minutes: { type: 'string', default: '5' }, sessions: { type: 'string', default: '40' } } });
const minutes = Number(values.minutes);
const sessions = Number(values.sessions);
if (!(minutes > 0 && minutes <= 24 * 60) || !(sessions > 0 && sessions <= 2_000)) {
  process.stderr.write('soak: --minutes 0..1440 and --sessions 1..2000\n');
  process.exit(2);
}

const emu = new GroqEmulator({ apiKey: 'k', realtime: 1 });
const server = createVoxlineServer({ providers: [groqProvider({ apiKey: 'k', baseURL: await emu.listen() })], metrics: false });
const url = `${(await server.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
const deadline = Date.now() + minutes * 60_000;
let utterances = 0;
let failures = 0;

async function session(n: number): Promise<void> {
  while (Date.now() < deadline) {
    const c = await TestVoiceClient.start(url);
    for (let i = 0; i < 10 && Date.now() < deadline; i++) {
      const id = `s${n}-${i}`;
      c.send({ type: 'speak', id, text: 'A sentence spoken during the soak, sometimes cut short.', mode: Math.random() < 0.3 ? 'enqueue' : 'interrupt' });
      const r = Math.random();
      if (r < 0.4) {
        await new Promise((res) => setTimeout(res, Math.random() * 500));
        c.send({ type: 'stop' });
      }
      try {
        await c.waitForEnd(id, 20_000);
        utterances++;
      } catch {
        failures++;
      }
    }
    if (Math.random() < 0.5) c.ws.terminate();
    else c.close();
  }
}

async function sample() {
  gc();
  await new Promise((r) => setTimeout(r, 50));
  gc();
  const m = process.memoryUsage();
  return { heapMB: m.heapUsed / 2 ** 20, rssMB: m.rss / 2 ** 20, externalMB: m.external / 2 ** 20, handles: process.getActiveResourcesInfo().length, ...server.engine.stats() };
}

const line = (t: number, s: Awaited<ReturnType<typeof sample>>) =>
  `${String(Math.round(t)).padStart(5)} s  heap ${s.heapMB.toFixed(1)} MB  rss ${s.rssMB.toFixed(1)} MB  external ${s.externalMB.toFixed(1)} MB  handles ${s.handles}  sessions ${s.sessions}  jobs ${s.upstreamJobs}  utterances ${utterances}  failures ${failures}`;

const started = Date.now();
const workers = Array.from({ length: sessions }, (_, n) => session(n));
await new Promise((r) => setTimeout(r, Math.min(20_000, minutes * 60_000 / 4)));
const warm = await sample();
process.stdout.write(`${line((Date.now() - started) / 1000, warm)}  (after warm-up)\n`);
const timer = setInterval(async () => process.stdout.write(`${line((Date.now() - started) / 1000, await sample())}\n`), 10_000);
await Promise.all(workers);
clearInterval(timer);
await new Promise((r) => setTimeout(r, 2_000));
const end = await sample();
process.stdout.write(`${line((Date.now() - started) / 1000, end)}  (end, all clients gone)\n`);
await server.close();
await emu.close();

const problems: string[] = [];
if (end.sessions !== 0 || end.upstreamJobs !== 0) problems.push(`left behind: ${end.sessions} sessions, ${end.upstreamJobs} jobs`);
if (end.heapMB > warm.heapMB * 1.25 + 8) problems.push(`heap grew from ${warm.heapMB.toFixed(1)} to ${end.heapMB.toFixed(1)} MB`);
// RSS rarely shrinks (the allocator keeps freed pages), so only runaway growth counts.
if (end.rssMB > warm.rssMB * 1.5 + 64) problems.push(`rss grew from ${warm.rssMB.toFixed(0)} to ${end.rssMB.toFixed(0)} MB`);
if (end.externalMB > warm.externalMB * 1.25 + 8) problems.push(`external memory grew from ${warm.externalMB.toFixed(1)} to ${end.externalMB.toFixed(1)} MB`);
if (end.utterancesAccepted !== end.utterancesEnded) problems.push(`${end.utterancesAccepted - end.utterancesEnded} utterances never ended`);
if (failures > 0) problems.push(`${failures} utterances without a speak.end in 20 s`);
process.stdout.write(problems.length === 0 ? `soak passed: ${utterances} utterances in ${minutes} min, no growth\n` : `soak FAILED: ${problems.join('; ')}\n`);
process.exit(problems.length === 0 ? 0 : 1);
