// `voxline serve --processes 2`: two whole servers on one port, over real sockets. Sessions
// land on both processes; SIGTERM to the primary drains both (every live utterance ends
// `failed` / `shutting_down`, sockets close 1001) and the primary exits 0; a worker that dies
// is replaced and the port keeps serving.
import { describe, expect, it } from 'vitest';
import { TestVoiceClient } from '../support/voiceClient.js';
import { voxline } from '../support/voxlineProcess.js';

/** pid of every process that logged `event` (pino lines on stdout). */
function pidsOf(stdout: string, event: string): Set<number> {
  const pids = new Set<number>();
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { event?: string; pid?: number };
    if (entry.event === event && entry.pid !== undefined) pids.add(entry.pid);
  }
  return pids;
}

const start = () => voxline(['serve', '--port', '0', '--processes', '2', '--log-level', 'info', '--espeak-workers', '1'], { until: /listening on (http:\/\/\S+) .* with 2 processes/ });

describe('voxline serve --processes 2', () => {
  it('serves sessions from two processes on one port; SIGTERM drains both and exits 0', async () => {
    const p = start();
    await p.ready;
    const ws = /voice endpoint (ws:\/\/\S+)\)/.exec(p.run.stdout)![1]!;
    // Round-robin hands connections out in turn: 6 sessions reach both workers.
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestVoiceClient.start(ws)));
    clients.forEach((c, i) => c.send({ type: 'speak', id: `long${i}`, text: 'A long answer. '.repeat(200) }));
    await Promise.all(clients.map((c) => c.waitFor(() => c.frames.find((f) => f.kind === 'audio'), 30_000)));
    await new Promise((r) => setTimeout(r, 200)); // let the accepted lines reach stdout
    expect(pidsOf(p.run.stdout, 'utterance.accepted').size).toBe(2);

    p.child.kill('SIGTERM');
    for (const [i, c] of clients.entries()) {
      expect(await c.waitForEnd(`long${i}`)).toMatchObject({ reason: 'failed', error: { code: 'shutting_down' } });
      expect(await c.waitForClose()).toBe(1001);
    }
    const r = await p.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(pidsOf(r.stdout, 'stopped').size).toBe(3); // both workers and the primary
  });

  it('replaces a worker that dies, and the port keeps serving', async () => {
    const p = start();
    await p.ready;
    const ws = /voice endpoint (ws:\/\/\S+)\)/.exec(p.run.stdout)![1]!;
    const [first] = [...pidsOf(p.run.stdout, 'listening')].filter((pid) => pid !== p.child.pid);
    process.kill(first!, 'SIGKILL');
    // A fresh worker logs `listening` under a new pid.
    const deadline = Date.now() + 30_000;
    while (pidsOf(p.run.stdout, 'listening').size < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(pidsOf(p.run.stdout, 'listening').size).toBe(4); // primary, two workers, the replacement
    expect(p.run.stdout).toContain('"event":"worker.exit"');
    const clients = await Promise.all(Array.from({ length: 4 }, () => TestVoiceClient.start(ws)));
    clients.forEach((c, i) => c.send({ type: 'speak', id: `s${i}`, text: 'Still here.' }));
    for (const [i, c] of clients.entries()) expect(await c.waitForEnd(`s${i}`, 30_000)).toMatchObject({ reason: 'completed' });
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
  });
});
