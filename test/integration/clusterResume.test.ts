// Resuming on another gateway of a cluster: two gateway processes joined by a real redis-server
// on 127.0.0.1. A client dropped from gateway A resumes through gateway B (which relays it to A,
// the session's owner, found in the Redis session directory) and gets every frame once, in order,
// sample-identical to an undisturbed run, one speak.end per utterance. A resume whose owner was
// killed fails cleanly (resume_failed, 1008) within its deadline. A gateway given SIGTERM under
// load (a dozen clients streaming) sends each session.goaway and 1012; each resumes on the other
// gateway, is relayed back while the first drains, and hears its audio whole.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RunningRedis } from '../support/redisServer.js';
import { audioCount, expectScriptWhole, readyOf, resumeOn, spawnReady, withoutReady, type ReadyChild } from '../support/clusterProcesses.js';
import { assertContract, resumeScript, samplesById, TestVoiceClient } from '../support/voiceClient.js';

type Gateway = ReadyChild;

let redis: RunningRedis;
const children: ChildProcess[] = [];

const gateway = (env: Record<string, string> = {}): Promise<Gateway> =>
  spawnReady('test/support/toneGateway.ts', /gateway listening on (\S+)/, { REDIS_URL: redis.url, LEASE_MS: '1500', RESUME_WINDOW_MS: '5000', TEXT_PER_MINUTE: '400', ...env }, children);

const script = resumeScript;

let a: Gateway;
let b: Gateway;
const reference = new Map<string, Int16Array>();

beforeAll(async () => {
  redis = await startRedis();
  [a, b] = await Promise.all([gateway(), gateway()]);
  const c = await TestVoiceClient.start(a.url, { resume: true });
  for (const frame of script) c.send(frame);
  await c.waitForEnd('u3');
  for (const [id, samples] of samplesById(c.frames)) reference.set(id, samples);
  c.close();
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await redis?.stop();
});


/** A gateway's `voxline_cluster_relays{direction}` from its /metrics. */
async function relays(voiceUrl: string, direction: 'in' | 'out'): Promise<number> {
  const text = await (await fetch(`${voiceUrl.replace('ws', 'http').replace('/v1/voice', '')}/metrics`)).text();
  const m = new RegExp(`^voxline_cluster_relays\\{direction="${direction}"\\} (\\d+)$`, 'm').exec(text);
  if (!m) throw new Error(`no voxline_cluster_relays{direction="${direction}"} in ${voiceUrl}'s metrics`);
  return Number(m[1]);
}

const bytesOf = (samples: Int16Array | undefined) => (samples ? Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength) : Buffer.alloc(0));
describe('resuming on another gateway of a cluster', () => {
  for (const [dropAfter, detachMs] of [
    [2, 0],
    [25, 0],
    [10, 800],
  ] as const) {
    it(`dropped from gateway A after ${dropAfter} frames, resumed on B ${detachMs} ms later: every frame once, in order, sample-identical`, async () => {
      const dropped = await TestVoiceClient.start(a.url, { resume: true });
      for (const frame of script) dropped.send(frame);
      await dropped.waitFor(() => (audioCount(dropped) >= dropAfter ? true : undefined));
      dropped.terminate();
      await new Promise((r) => setTimeout(r, 50 + detachMs));
      const resumed = await resumeOn(b.url, dropped);
      await expectScriptWhole(reference, dropped, resumed);
      // Each gateway counts the relay: B passes it out, A takes it in.
      expect(await relays(b.url, 'out')).toBeGreaterThanOrEqual(1);
      expect(await relays(a.url, 'in')).toBeGreaterThanOrEqual(1);
      // The relayed session goes on live through B: one more utterance, and a clean close.
      resumed.send({ type: 'speak', id: 'after', text: 'And one more, live.' });
      expect((await resumed.waitForEnd('after')).reason).toBe('completed');
      resumed.close();
      expect(await resumed.waitForClose()).toBe(1005);
    });
  }

  it('SIGTERM on a gateway mid-utterance: session.goaway and 1012, the client resumes on the other gateway with nothing lost, the gateway exits 0', async () => {
    const c = await gateway();
    const client = await TestVoiceClient.start(c.url, { resume: true });
    for (const frame of script) client.send(frame);
    await client.waitFor(() => (audioCount(client) >= 8 ? true : undefined));
    c.child.kill('SIGTERM');
    expect(await client.waitForClose()).toBe(1012);
    expect(client.messages().find((m) => m.type === 'session.goaway')).toMatchObject({ timeLeftMs: 5_000 });
    const resumed = await resumeOn(b.url, client);
    expect(resumed.messages()[0]).toMatchObject({ type: 'session.ready', resumed: true });
    if (!client.messages().some((m) => m.type === 'speak.end' && m.id === 'u3')) await resumed.waitForEnd('u3');
    const all = [...withoutReady(client.frames), ...withoutReady(resumed.frames)].filter((f) => !(f.kind === 'message' && f.message.type === 'session.goaway'));
    assertContract(all);
    const heard = samplesById(all);
    for (const [id, samples] of reference) expect(heard.get(id), id).toEqual(samples);
    // Nothing plays any more: the draining gateway ends the session (1001, relayed) and exits 0.
    expect(await resumed.waitForClose(8_000)).toBe(1001);
    await c.exited;
    expect(c.child.exitCode).toBe(0);
  });

  it('SIGTERM on a gateway under load: 12 streaming clients each get session.goaway and 1012, resume on the other gateway, hear everything once; the gateway exits 0', async () => {
    const c = await gateway({ DRAIN_MS: '30000', TEXT_PER_MINUTE: '60000' });
    const long = Array.from({ length: 24 }, (_, i) => `Sentence ${i + 1} of a long answer goes on.`).join(' ');
    const load = [
      { type: 'speak', id: 'long', text: long },
      { type: 'speak', id: 'tail', text: 'And a short one after it.', mode: 'enqueue' },
    ];
    // The undisturbed run, on the same gateway.
    const undisturbed = await TestVoiceClient.start(c.url, { resume: true });
    for (const frame of load) undisturbed.send(frame);
    await undisturbed.waitForEnd('tail', 30_000);
    const expected = samplesById(undisturbed.frames);
    expect(expected.get('long')!.length).toBeGreaterThan(24_000 * 10); // over 10 s of audio: it streams for a while
    undisturbed.close();

    const clients = await Promise.all(Array.from({ length: 12 }, () => TestVoiceClient.start(c.url, { resume: true })));
    for (const client of clients) for (const frame of load) client.send(frame);
    await Promise.all(clients.map((client) => client.waitFor(() => (audioCount(client) >= 5 ? true : undefined), 30_000)));
    const midStream = clients.filter((client) => !client.messages().some((m) => m.type === 'speak.end')).length;
    c.child.kill('SIGTERM');
    const resumed = await Promise.all(
      clients.map(async (client) => {
        expect(await client.waitForClose(15_000)).toBe(1012);
        expect(client.messages().find((m) => m.type === 'session.goaway')).toMatchObject({ timeLeftMs: 30_000 });
        const r = await resumeOn(b.url, client);
        expect(r.messages()[0]).toMatchObject({ type: 'session.ready', resumed: true });
        if (!client.messages().some((m) => m.type === 'speak.end' && m.id === 'tail')) await r.waitForEnd('tail', 30_000);
        return r;
      }),
    );
    for (const [i, client] of clients.entries()) {
      const all = [...withoutReady(client.frames), ...withoutReady(resumed[i]!.frames)].filter((f) => !(f.kind === 'message' && f.message.type === 'session.goaway'));
      assertContract(all);
      const ends = all.flatMap((f) => (f.kind === 'message' && f.message.type === 'speak.end' ? [[f.message.id, f.message.reason]] : []));
      expect(ends, `client ${i}`).toEqual([
        ['long', 'completed'],
        ['tail', 'completed'],
      ]);
      const heard = samplesById(all);
      // Byte comparison: a deep equality over half a million samples per client takes seconds.
      for (const [id, samples] of expected) expect(bytesOf(heard.get(id)).equals(bytesOf(samples)), `client ${i}, ${id}: ${heard.get(id)?.length} samples, ${samples.length} expected`).toBe(true);
    }
    // The load was real: most clients were mid-utterance when the signal came.
    expect(midStream).toBeGreaterThanOrEqual(10);
    // Idle, the draining gateway ends its sessions (1001, relayed) and exits 0.
    for (const r of resumed) expect(await r.waitForClose(30_000)).toBe(1001);
    await c.exited;
    expect(c.child.exitCode).toBe(0);
  }, 120_000);

  it('the speech requests’ text budget holds across gateways (one minute window per client, in Redis)', async () => {
    // TEXT_PER_MINUTE is 400 on these gateways; the client is 127.0.0.1 on both (no keys).
    const speech = (url: string, input: string) =>
      fetch(`${url.replace('ws', 'http').replace('/v1/voice', '')}/v1/audio/speech`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'voxline', input, voice: 'tone', response_format: 'pcm' }),
      });
    const first = await speech(a.url, 'x'.repeat(250));
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    const second = await speech(b.url, 'y'.repeat(250));
    expect(second.status).toBe(429);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
  });

  it('after the window: resume_failed (unknown_session) on the other gateway, and the owner released the session and its directory entry', async () => {
    const dropped = await TestVoiceClient.start(a.url, { resume: true });
    dropped.send(script[0]);
    await dropped.waitFor(() => (audioCount(dropped) >= 3 ? true : undefined));
    dropped.terminate();
    const { connectRedis } = await import('../../src/cluster/redis.js');
    const admin = await connectRedis(redis.url);
    const entry = `voxline:session:${readyOf(dropped).sessionId}`;
    expect(await admin.get(entry)).toBe(a.url);
    // RESUME_WINDOW_MS is 5 s on these gateways.
    await new Promise((r) => setTimeout(r, 5_600));
    expect(await admin.exists(entry)).toBe(0);
    admin.disconnect();
    const late = await resumeOn(b.url, dropped);
    expect(late.messages()[0]).toMatchObject({ type: 'error', code: 'resume_failed' });
    expect((late.messages()[0] as { message: string }).message).toMatch(/^unknown_session/);
    expect(await late.waitForClose()).toBe(1008);
  });

  it('a resume whose owner was killed fails cleanly: resume_failed and 1008 within seconds, nothing hangs', async () => {
    const dropped = await TestVoiceClient.start(a.url, { resume: true });
    dropped.send(script[0]);
    await dropped.waitFor(() => (audioCount(dropped) >= 3 ? true : undefined));
    dropped.terminate();
    a.child.kill('SIGKILL');
    await a.exited;
    const startedAt = Date.now();
    const resumed = await resumeOn(b.url, dropped);
    expect(resumed.messages()).toEqual([expect.objectContaining({ type: 'error', code: 'resume_failed' })]);
    expect(await resumed.waitForClose()).toBe(1008);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });
});
