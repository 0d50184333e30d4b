// What the cluster tests share: a child process started with tsx that says it is ready on its
// stdout (a gateway or a worker of test/support), and the resume helpers a test of a dropped or
// moved session uses on its clients.
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { assertContract, resumeCursor, samplesById, TestVoiceClient, type ClientFrame } from './voiceClient.js';

export interface ReadyChild {
  /** What the ready line's first group captured (a gateway's voice URL), or ''. */
  url: string;
  child: ChildProcess;
  exited: Promise<void>;
}

/** `node --import tsx <script>` with `env`; resolves once its stdout matches `ready` (20 s), rejects if it exits first. */
export async function spawnReady(script: string, ready: RegExp, env: Record<string, string>, children: ChildProcess[]): Promise<ReadyChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`${script} did not start: ${err.slice(-500)}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(deadline);
        resolve(m[1] ?? '');
      }
    });
    void exited.then(() => reject(new Error(`${script} exited: ${err.slice(-500)}`)));
  });
  return { url, child, exited };
}

export const withoutReady = (frames: readonly ClientFrame[]) => frames.filter((f) => !(f.kind === 'message' && f.message.type === 'session.ready'));
export const audioCount = (c: TestVoiceClient) => c.frames.filter((f) => f.kind === 'audio').length;
export const readyOf = (c: TestVoiceClient) => c.messages().find((m) => m.type === 'session.ready') as Extract<ServerMessage, { type: 'session.ready' }>;

/** Resume `dropped`'s session on `url` with the cursor of what it received; resolves at the first answer. */
export async function resumeOn(url: string, dropped: TestVoiceClient, token = readyOf(dropped).resume!.token): Promise<TestVoiceClient> {
  const c = await TestVoiceClient.connect(url);
  c.send({ type: 'session.resume', sessionId: readyOf(dropped).sessionId, token, ...resumeCursor(dropped.frames) });
  await c.waitFor(() => c.messages().find((m) => m.type === 'session.ready' || m.type === 'error'), 10_000);
  return c;
}

/**
 * The resume script (u1, u2, u3) across both connections of a resumed client: session.ready
 * `resumed`, every frame once and in order, three completed ends, each utterance's samples as
 * in `reference` (an undisturbed run).
 */
export async function expectScriptWhole(reference: ReadonlyMap<string, Int16Array>, dropped: TestVoiceClient, resumed: TestVoiceClient): Promise<void> {
  expect(resumed.messages()[0]).toMatchObject({ type: 'session.ready', sessionId: readyOf(dropped).sessionId, resumed: true });
  if (!dropped.messages().some((m) => m.type === 'speak.end' && m.id === 'u3')) await resumed.waitForEnd('u3', 20_000);
  const all = [...withoutReady(dropped.frames), ...withoutReady(resumed.frames)];
  assertContract(all);
  const ends = all.flatMap((f) => (f.kind === 'message' && f.message.type === 'speak.end' ? [[f.message.id, f.message.reason]] : []));
  expect(ends).toEqual([
    ['u1', 'completed'],
    ['u2', 'completed'],
    ['u3', 'completed'],
  ]);
  const heard = samplesById(all);
  for (const [id, samples] of reference) expect(heard.get(id), id).toEqual(samples);
}
