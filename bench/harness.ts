// The orchestrator's process helpers, shared by bench/run.ts and bench/cluster.ts: children
// forked with tsx (or as compiled JavaScript), request/answer over IPC, and the contenders'
// server compiled file by file so it runs under plain node as in production.
import { fork, type ChildProcess } from 'node:child_process';
import { copyFileSync, readdirSync } from 'node:fs';
import { build } from 'esbuild';
import type { Scenario } from './loadgen.js';

export const execArgv = ['--import', 'tsx', '--expose-gc'];

/** Fork `script` and resolve with the child and its first message (its `ready`). */
export function spawnChild(script: string, args: string[] = [], argv = execArgv): Promise<{ child: ChildProcess; first: Record<string, unknown> }> {
  const child = fork(script, args, { execArgv: argv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', (first: Record<string, unknown>) => resolve({ child, first }));
    child.once('exit', (code) => reject(new Error(`${script} exited ${code}`)));
  });
}

let requestId = 0;
/** Run a load generator scenario and resolve with its result. */
export function call<T>(child: ChildProcess, scenario: Scenario): Promise<T> {
  const id = ++requestId;
  return new Promise((resolve, reject) => {
    const onMessage = (m: { id?: number; result?: T; error?: string }) => {
      if (m.id !== id) return;
      child.off('message', onMessage);
      if (m.error) reject(new Error(m.error));
      else resolve(m.result as T);
    };
    child.on('message', onMessage);
    child.send({ id, scenario });
  });
}

/** Resolve with a child's first message of type `type` from now on. */
export function nextMessage<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (m: { type: string }) => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      resolve(m as T);
    };
    child.on('message', onMessage);
  });
}

/** Send a child `message` and resolve with its first message of type `answer`. */
export function ask<T>(child: ChildProcess, message: { type: string }, answer: string): Promise<T> {
  const answered = nextMessage<T>(child, answer);
  child.send(message);
  return answered;
}

export interface Stats {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  cpuMs: number;
  handles: number;
}
export const stats = (server: ChildProcess) => ask<Stats>(server, { type: 'stats' }, 'stats');
export const cpuMs = async (server: ChildProcess) => (await ask<{ cpuMs: number }>(server, { type: 'cpu' }, 'cpu')).cpuMs;

/** Let the previous scenario's streams drain (the emulator has nothing open) before measuring the next. */
export async function quiet(emulator: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await ask<{ active: number }>(emulator, { type: 'emuStats' }, 'emuStats')).active > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 300));
}

export const tag = (name: string) => `${name}${Date.now().toString(36)}`;

/** Transpile the contenders' server (and everything it imports) file by file into bench/results/build. */
export async function compileContenders(): Promise<string> {
  const outdir = 'bench/results/build';
  const sources = ['src', 'machines', 'bench'].flatMap((dir) =>
    (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => `${dir}/${f}`),
  );
  await build({ entryPoints: sources, outdir, outbase: '.', format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' });
  copyFileSync('src/providers/espeak/espeakWorker.mjs', `${outdir}/src/providers/espeak/espeakWorker.mjs`);
  copyFileSync('src/listening/pocketsphinx/pocketsphinxWorker.mjs', `${outdir}/src/listening/pocketsphinx/pocketsphinxWorker.mjs`);
  return `${outdir}/bench/serverProcess.js`;
}

/**
 * The capacity method (figure 3): loads of `ramp` tried in turn on every contender still
 * sustaining (interleaved, so a neighbour's load hits all alike), then the range between each
 * contender's last load sustained and its first that broke bisected `bisections` times (to 10
 * streams). `sustains` runs one load on one contender and says whether it held.
 */
export async function capacityRamp<C>(order: C[], ramp: number[], bisections: number, sustains: (c: C, sessions: number) => Promise<boolean>): Promise<Map<C, { maxStreams: number; broke: number }>> {
  const state = new Map(order.map((c) => [c, { maxStreams: 0, broke: 0 }]));
  const tryLoad = async (c: C, sessions: number) => {
    const st = state.get(c)!;
    if (await sustains(c, sessions)) st.maxStreams = Math.max(st.maxStreams, sessions);
    else st.broke = sessions;
  };
  for (const sessions of ramp) {
    const alive = order.filter((c) => state.get(c)!.broke === 0);
    if (alive.length === 0) break;
    for (const c of alive) await tryLoad(c, sessions);
  }
  for (let step = 0; step < bisections; step++) {
    for (const c of order) {
      const st = state.get(c)!;
      const mid = Math.round((st.maxStreams + st.broke) / 2 / 10) * 10;
      if (st.broke === 0 || mid <= st.maxStreams || mid >= st.broke) continue;
      await tryLoad(c, mid);
    }
  }
  return state;
}
