// `tsx bench/profile.ts [contender] [sessions] [seconds] [stream|ttfa]`: CPU-profile one contender's
// server process while it streams to many real-time sessions (or while they all start utterances
// together, round after round, as the time-to-first-audio figure does), and print where its time goes
// (self time by function). The .cpuprofile is left in bench/results/ for a closer look.
import { fork } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { GroqEmulator } from '../src/emulators/groqEmulator.js';
import { compileContenders } from './harness.js';
import type { ContenderName } from './common.js';

const [contender = 'voxline', sessionsArg = '200', secondsArg = '8', scenario = 'stream'] = process.argv.slice(2) as [ContenderName?, string?, string?, string?];
const dir = 'bench/results/profile';
mkdirSync(dir, { recursive: true });
const emu = new GroqEmulator({ firstByteDelayMs: 20, realtime: 1 });
const upstream = await emu.listen();
// The compiled server under plain node, as the bench runs it (tsx's loader would show up as cost).
const server = fork(await compileContenders(), [contender, upstream], { execArgv: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
const port = await new Promise<number>((resolve) => server.once('message', (m: { port: number }) => resolve(m.port)));
const loadgen = fork('bench/loadgen.ts', [], { execArgv: ['--import', 'tsx'] });
await new Promise((resolve) => loadgen.once('message', resolve));
const text = 'This is a long answer that keeps streaming for a while, so that the load is real. '.repeat(2);
if (scenario === 'ttfa') {
  loadgen.send({ id: 1, scenario: { kind: 'ttfa', contender, port, sessions: Number(sessionsArg), rounds: Number(secondsArg), text: 'Good morning, here is the weather for today.', tag: 'prof' } });
  const answer = await new Promise<{ result?: { received?: { binary: number; text: number } } }>((resolve) => loadgen.once('message', resolve));
  const got = answer.result?.received;
  const utterances = Number(sessionsArg) * (Number(secondsArg) + 1);
  if (got) process.stdout.write(`per utterance the clients received ${(got.binary / utterances).toFixed(2)} audio frames and ${(got.text / utterances).toFixed(2)} text messages\n`);
} else {
  loadgen.send({ id: 1, scenario: { kind: 'open', contender, port, sessions: Number(sessionsArg), speakText: text, tag: 'prof' } });
  await new Promise((resolve) => loadgen.once('message', resolve));
  await new Promise((resolve) => setTimeout(resolve, Number(secondsArg) * 1000));
}
const before = new Set(readdirSync(dir));
server.send({ type: 'exit' });
await new Promise((resolve) => server.once('exit', resolve));
loadgen.kill();
const requests = emu.stats().requests;
process.stdout.write(`emulator requests: ${requests}\n`);
await emu.close();

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && !before.has(f)) ?? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort().at(-1)!;
const profile = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
};
const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const byName = new Map<string, number>();
let total = 0;
for (const node of profile.nodes) {
  const t = self.get(node.id) ?? 0;
  total += t;
  const where = node.callFrame.url.replace(/^.*\/(node_modules\/[^/]+(\/[^/]+)?|src|machines)\//, '$1/').slice(-60);
  const key = `${node.callFrame.functionName || '(anonymous)'}  ${where}:${node.callFrame.lineNumber + 1}`;
  byName.set(key, (byName.get(key) ?? 0) + t);
}
const idle = [...byName.entries()].filter(([k]) => k.startsWith('(idle)')).reduce((s, [, v]) => s + v, 0);
process.stdout.write(`${contender}, ${sessionsArg} ${scenario === 'ttfa' ? `sessions starting together, ${secondsArg} rounds` : `real-time streams, ${secondsArg} s`}: busy ${(((total - idle) / total) * 100).toFixed(0)}% of one core\n`);
for (const [k, v] of [...byName.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 25))) {
  process.stdout.write(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}\n`);
}
// The same self time by where it lives (a package, Node's internals, our own code), and per emulator request.
const byPlace = new Map<string, number>();
for (const node of profile.nodes) {
  const t = self.get(node.id) ?? 0;
  const { url, functionName } = node.callFrame;
  const place = /node_modules\/(@[^/]+\/)?[^/]+/.exec(url)?.[0].replace('node_modules/', '')
    ?? (url.includes('undici') ? 'undici (node)' : url.startsWith('node:') ? 'node internals' : /\/(src|machines|bench)\//.test(url) ? 'voxline code' : url === '' ? `(${functionName || 'native'})` : 'other');
  byPlace.set(place, (byPlace.get(place) ?? 0) + t);
}
process.stdout.write(`\nby place (µs of CPU per emulator request, ${requests} requests):\n`);
for (const [k, v] of [...byPlace.entries()].filter(([k]) => k !== '((idle))').sort((a, b) => b[1] - a[1]).slice(0, 14)) {
  process.stdout.write(`${(v / requests).toFixed(0).padStart(7)}  ${k}\n`);
}
process.stdout.write(`profile: ${dir}/${file}\n`);
process.exit(0);
