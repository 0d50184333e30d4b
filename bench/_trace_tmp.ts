process.setSourceMapsEnabled(false);
import { fork } from 'node:child_process';
import { GroqEmulator } from '../src/emulators/groqEmulator.js';
import { groqProvider } from '../src/providers/groq/groqProvider.js';
import { createVoxlineServer } from '../src/server/voxlineServer.js';
const emuProc = fork('bench/emulatorProcess.ts', ['20'], { execArgv: ['--import', 'tsx'] });
const upstream = await new Promise<string>((r) => emuProc.once('message', (m: { url: string }) => r(m.url)));
void GroqEmulator;
const server = createVoxlineServer({
  providers: [groqProvider({ apiKey: 'bench', baseURL: upstream })],
  metrics: false, maxConnectionsPerIp: 100_000,
  abuse: { messagesPerSecond: 1_000, messageBurst: 1_000, maxSessionsPerKey: 100_000 },
  limits: { handshakeTimeoutMs: 120_000 }, heartbeatIntervalMs: 60_000,
});
await server.engine.ready();
const { port } = await server.listen(0, '127.0.0.1');
const eng = server.engine as unknown as Record<string, (...a: unknown[]) => unknown>;
const ocf = eng.onClientFrame!;
const spans: Record<string, number[]> = { speak: [], stop: [] };
eng.onClientFrame = function (...a: unknown[]) {
  const t = performance.now();
  const r = ocf.apply(this, a);
  const d = performance.now() - t;
  const s = String(a[1]);
  if (s.includes('"speak"')) spans.speak!.push(d); else if (s.includes('"stop"')) spans.stop!.push(d);
  return r;
};
const loadgen = fork('bench/loadgen.ts', [], { execArgv: ['--import', 'tsx'] });
await new Promise((r) => loadgen.once('message', r));
loadgen.send({ id: 1, scenario: { kind: 'ttfa', contender: 'voxline', port, sessions: Number(process.argv[2] ?? 100), rounds: 5, text: 'Good morning, here is the weather for today.', tag: 'x' } });
const res = await new Promise<{ result: { ttfa: number[] } }>((r) => loadgen.once('message', r));
const med = (xs: number[], q = 0.5) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)]!.toFixed(3);
console.log('speak sync ms p50', med(spans.speak!), 'p90', med(spans.speak!, 0.9), 'n', spans.speak!.length, '| stop p50', med(spans.stop!), 'p90', med(spans.stop!, 0.9), '| ttfa p50', med(res.result.ttfa));
loadgen.kill(); emuProc.kill(); process.exit(0);
