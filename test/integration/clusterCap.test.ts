// The per-key session cap across two gateway processes joined by a real redis-server on
// 127.0.0.1: exactly the cap is accepted whichever gateway the sessions land on; a gateway
// killed with SIGKILL gives its places back once its leases expire; Redis gone refuses new
// sessions at once (fail closed, nothing hangs); Redis back, restarted empty, gets the live
// sessions' leases back from their gateway and counts them again.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { TestVoiceClient } from '../support/voiceClient.js';
import { voxline } from '../support/voxlineProcess.js';

const leaseMs = 1_500;
const cap = 5;
let redis: RunningRedis;
let keysFile: string;
const gateways: Array<ReturnType<typeof voxline>> = [];

async function gateway(): Promise<{ url: string; process: ReturnType<typeof voxline> }> {
  const run = voxline(
    ['serve', '--port', '0', '--redis', redis.url, '--role', 'gateway', '--lease-ms', String(leaseMs), '--max-sessions-per-key', String(cap), '--keys-file', keysFile, '--espeak-workers', '1', '--log-level', 'warn'],
    { until: /listening on http:\/\/\S+/ },
  );
  gateways.push(run);
  await run.ready;
  const http = /listening on (http:\/\/\S+)/.exec(run.run.stdout)![1]!;
  return { url: `${http.replace('http', 'ws')}/v1/voice`, process: run };
}

/** A session.start with the key: the client when accepted, else the error code it got. */
async function open(url: string): Promise<TestVoiceClient | string> {
  const c = await TestVoiceClient.connect(url);
  c.send({ type: 'session.start', token: 'key-one' });
  const answer = await c.waitForMessage((m) => m.type === 'session.ready' || m.type === 'error');
  if (answer.type === 'session.ready') return c;
  await c.waitForClose();
  return (answer as { code: string }).code;
}

const accepted = (results: Array<TestVoiceClient | string>) => results.filter((r): r is TestVoiceClient => typeof r !== 'string');

beforeAll(async () => {
  redis = await startRedis();
  keysFile = join(mkdtempSync(join(tmpdir(), 'voxline-cap-')), 'keys.txt');
  writeFileSync(keysFile, 'key-one\n');
}, 30_000);

afterAll(async () => {
  for (const g of gateways) if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGKILL');
  await redis?.stop();
});

describe('a per-key session cap across two gateways', () => {
  it('accepts exactly the cap, gives a SIGKILLed gateway’s places back after its leases, refuses while Redis is away', async () => {
    const [a, b] = await Promise.all([gateway(), gateway()]);
    const onA = accepted(await Promise.all([open(a.url), open(a.url), open(a.url)]));
    expect(onA).toHaveLength(3);
    // Five at once on the other gateway: exactly two fit.
    const onB = await Promise.all(Array.from({ length: 5 }, () => open(b.url)));
    expect(accepted(onB)).toHaveLength(2);
    expect(onB.filter((r) => typeof r === 'string')).toEqual(['too_many_sessions', 'too_many_sessions', 'too_many_sessions']);
    // One more on either gateway: refused.
    expect(await open(a.url)).toBe('too_many_sessions');

    // A session that ends gives its place back at once (not at its lease's end).
    accepted(onB)[0]!.close();
    await accepted(onB)[0]!.waitForClose();
    const again = await waitForAccepted(b.url, 1_000);
    expect(again).toBeInstanceOf(TestVoiceClient);

    // The gateway holding three dies without a word: its places stay taken until its leases expire…
    const killedAt = Date.now();
    a.process.child.kill('SIGKILL');
    await a.process.exited;
    expect(await open(b.url)).toBe('too_many_sessions');
    // …then come back by themselves: exactly three.
    const back: TestVoiceClient[] = [];
    const first = await waitForAccepted(b.url, leaseMs * 3);
    back.push(first as TestVoiceClient);
    expect(Date.now() - killedAt).toBeLessThan(leaseMs * 3);
    // The dead gateway's leases were refreshed at slightly different moments: each comes back
    // within a refresh period of the first (a third of the lease), and no more than three do.
    const deadline = Date.now() + leaseMs;
    while (back.length < 3 && Date.now() < deadline) {
      const next = await open(b.url);
      if (typeof next === 'string') await new Promise((r) => setTimeout(r, 50));
      else back.push(next);
    }
    expect(back).toHaveLength(3);
    expect(await open(b.url)).toBe('too_many_sessions');

    // Redis away: a new session is refused at once, and nothing hangs.
    await redis.stop();
    const startedAt = Date.now();
    const c = await TestVoiceClient.connect(b.url);
    c.send({ type: 'session.start', token: 'key-one' });
    expect(await c.waitForMessage((m) => m.type === 'error', 5_000)).toMatchObject({ code: 'internal' });
    expect(Date.now() - startedAt).toBeLessThan(3_000);
    // Redis back, empty (it kept nothing on disk): the gateway puts its live leases back with its
    // next refresh, so the five sessions still count; one that ends frees a place again.
    redis = await startRedis(redis.port);
    await new Promise((r) => setTimeout(r, leaseMs));
    expect(await open(b.url)).toBe('too_many_sessions');
    back[0]!.close();
    expect(await waitForAccepted(b.url, 5_000)).toBeInstanceOf(TestVoiceClient);
  }, 60_000);
});

/** Try to open a session every 100 ms until one is accepted or the deadline passes. */
async function waitForAccepted(url: string, timeoutMs: number): Promise<TestVoiceClient | string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await open(url);
    if (typeof r !== 'string' || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
