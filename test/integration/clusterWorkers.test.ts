// Synthesis workers on Redis Streams: one gateway (`--role gateway`) and two worker processes
// (`--role worker`, the embedded voice) joined by a real redis-server on 127.0.0.1. Speech goes
// gateway → job stream → a worker → the job's stream → gateway → client. A worker killed with
// SIGKILL while a dozen utterances stream: the ones whose piece it held end failed
// (provider_unavailable) once each within a few seconds, reclaimed by the other worker; all
// others complete; no utterance gets two ends or audio after its end.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerMessage } from '../../machines/types.js';
import { connectRedis } from '../../src/cluster/redis.js';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';
import { voxline } from '../support/voxlineProcess.js';

const claimIdleMs = 1_000;
let redis: RunningRedis;
const runs: Array<ReturnType<typeof voxline>> = [];
let gatewayUrl: string;
let workers: Array<ReturnType<typeof voxline>>;

function worker() {
  const run = voxline(['serve', '--redis', redis.url, '--role', 'worker', '--claim-idle-ms', String(claimIdleMs), '--espeak-workers', '2', '--log-level', 'warn'], {
    until: /voxline worker ready/,
  });
  runs.push(run);
  return run;
}

beforeAll(async () => {
  redis = await startRedis();
  const gateway = voxline(['serve', '--port', '0', '--redis', redis.url, '--role', 'gateway', '--log-level', 'warn'], { until: /listening on http:\/\/\S+/ });
  runs.push(gateway);
  workers = [worker(), worker()];
  await Promise.all([gateway.ready, ...workers.map((w) => w.ready)]);
  gatewayUrl = `${/listening on (http:\/\/\S+)/.exec(gateway.run.stdout)![1]!.replace('http', 'ws')}/v1/voice`;
}, 60_000);

afterAll(async () => {
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await redis?.stop();
});

const longText = Array.from({ length: 12 }, (_, i) => `This is sentence number ${i + 1} of a long answer.`).join(' ');

describe('synthesis workers on Redis Streams', () => {
  it('speaks through a worker: accepted, audio, one completed end', async () => {
    const c = await TestVoiceClient.start(gatewayUrl);
    c.send({ type: 'speak', id: 'hello', text: 'Hello there. This is a worker speaking.' });
    const end = await c.waitForEnd('hello', 15_000);
    expect(end.reason).toBe('completed');
    expect(c.audioOf(end.stream).length).toBeGreaterThan(10);
    assertContract(c.frames);
    c.close();
  });

  it('SIGKILL on a worker while 12 utterances stream: its ones end failed/provider_unavailable once, within seconds; the others complete', async () => {
    const clients = await Promise.all(Array.from({ length: 12 }, () => TestVoiceClient.start(gatewayUrl)));
    clients.forEach((c, i) => c.send({ type: 'speak', id: `long${i}`, text: longText }));
    // At least ten of them are streaming.
    await clients[0]!.waitFor(() => (clients.filter((c) => c.frames.some((f) => f.kind === 'audio')).length >= 10 ? true : undefined), 30_000);
    // …and every worker holds a job right now (so the one killed has pieces in flight).
    const admin = await connectRedis(redis.url);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const consumers = (await admin.xinfo('CONSUMERS', 'voxline:jobs:espeak', 'workers')) as Array<Array<string | number>>;
      const pending = consumers.map((c) => Number(c[c.indexOf('pending') + 1]));
      if (pending.length === 2 && pending.every((n) => n > 0)) break;
      if (Date.now() > deadline) throw new Error(`workers never both busy: ${JSON.stringify(pending)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    admin.disconnect();
    const killedAt = performance.now();
    workers[0]!.child.kill('SIGKILL');
    const ends = await Promise.all(clients.map((c, i) => c.waitForEnd(`long${i}`, 30_000)));
    for (const c of clients) assertContract(c.frames);
    const failed = ends.filter((e) => e.reason !== 'completed');
    for (const e of failed) expect(e).toMatchObject({ reason: 'failed', error: { code: 'provider_unavailable' } });
    // Only what the dead worker held: it runs two pieces at once, each of one utterance.
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed.length).toBeLessThanOrEqual(2);
    expect(ends.filter((e) => e.reason === 'completed').length).toBe(12 - failed.length);
    // Each failed end came within seconds of the kill (the claim timeout, a reclaim round, slack for a busy machine).
    for (const [i, e] of ends.entries()) {
      if (e.reason === 'completed') continue;
      const at = clients[i]!.frames.find((f) => f.kind === 'message' && (f.message as ServerMessage).type === 'speak.end')!.at;
      expect(at - killedAt).toBeLessThan(claimIdleMs + 8_000);
    }
    for (const c of clients) c.close();
  }, 60_000);
});
