// A Redis restarted empty (no persistence) under a gateway and a synthesis worker: the job
// stream and its consumer group are gone with everything else. The worker makes them again
// on its next read, so speech through the workers works again once both have reconnected,
// without restarting any process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { TestVoiceClient } from '../support/voiceClient.js';
import { voxline } from '../support/voxlineProcess.js';

let redis: RunningRedis;
const runs: Array<ReturnType<typeof voxline>> = [];
let gatewayUrl: string;

beforeAll(async () => {
  redis = await startRedis();
  const gateway = voxline(['serve', '--port', '0', '--redis', redis.url, '--role', 'gateway', '--log-level', 'warn'], { until: /listening on http:\/\/\S+/ });
  const worker = voxline(['serve', '--redis', redis.url, '--role', 'worker', '--espeak-workers', '1', '--log-level', 'warn'], { until: /voxline worker ready/ });
  runs.push(gateway, worker);
  await Promise.all([gateway.ready, worker.ready]);
  gatewayUrl = `${/listening on (http:\/\/\S+)/.exec(gateway.run.stdout)![1]!.replace('http', 'ws')}/v1/voice`;
}, 60_000);

afterAll(async () => {
  for (const r of runs) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await redis?.stop();
});

async function speakOnce(id: string) {
  const c = await TestVoiceClient.start(gatewayUrl);
  c.send({ type: 'speak', id, text: 'Hello there, after all.' });
  const end = await c.waitForEnd(id, 20_000);
  c.close();
  return end;
}

describe('Redis restarted empty under a gateway and a worker', () => {
  it('speech through the worker completes again, with no process restarted', async () => {
    expect((await speakOnce('before')).reason).toBe('completed');
    await redis.stop();
    redis = await startRedis(redis.port);
    // Each attempt ends (completed, or failed/timeout while the processes reconnect); a bounded
    // number of attempts, none of them timed by this test.
    const reasons: string[] = [];
    for (let attempt = 0; attempt < 8 && reasons.at(-1) !== 'completed'; attempt++) reasons.push((await speakOnce(`after${attempt}`)).reason);
    expect(reasons.at(-1), `ends after the restart: ${reasons.join(', ')}`).toBe('completed');
  }, 240_000);
});
