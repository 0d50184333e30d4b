// `voxline` as a user runs it: a real process, real files, real sockets.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatInt16 } from '../../src/audio/pcm.js';
import { WavStreamParser } from '../../src/audio/wavStreamParser.js';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { TestVoiceClient } from '../support/voiceClient.js';
import { voxline } from '../support/voxlineProcess.js';

const dir = mkdtempSync(join(tmpdir(), 'voxline-cli-'));

function readWav(file: string) {
  const parser = new WavStreamParser();
  const samples = concatInt16([parser.push(readFileSync(file)), parser.end()]);
  return { samples, rate: parser.format!.sampleRate };
}

let emu: GroqEmulator;
let server: VoxlineServer;
let wsUrl: string;

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'upstream' });
  server = createVoxlineServer({ providers: [groqProvider({ apiKey: 'upstream', baseURL: await emu.listen() })], apiKeys: ['cli-key'] });
  wsUrl = `${(await server.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
});

afterAll(async () => {
  await server?.close();
  await emu?.close();
});

describe('voxline CLI', () => {
  it('--help explains serve and say with their flags and environment variables', async () => {
    const r = await voxline(['--help']).exited;
    expect(r.code).toBe(0);
    for (const s of ['Usage: voxline [serve]', 'voxline say', '--port', 'PORT', '--keys-file', '--tls-cert', '--inspect', '--log-level', 'GROQ_API_KEY']) {
      expect(r.stdout).toContain(s);
    }
  });

  it.each([
    [['--port', 'abc'], /^voxline: --port must be a whole number from 0 to 65535, got "abc"\n$/],
    [['--bogus'], /^voxline: Unknown option '--bogus' \(see voxline --help\)\n$/],
    [['--log-level', 'loud'], /^voxline: --log-level must be one of/],
    [['--tls-cert', 'x.pem'], /^voxline: --tls-cert and --tls-key go together\n$/],
    [['--keys-file', '/nonexistent/keys'], /^voxline: --keys-file: cannot read "\/nonexistent\/keys" \(ENOENT\)\n$/],
    [['fly'], /^voxline: unknown command "fly"/],
    [['say', 'hi'], /^voxline: say needs --out <file.wav>\n$/],
    [['--providers', 'groq'], /^voxline: --providers groq needs GROQ_API_KEY \(or --emulators\)\n$/],
    [['--providers', 'polly'], /^voxline: --providers: unknown provider "polly" \(espeak, groq, elevenlabs\)\n$/],
    [['--vad', 'energy'], /^voxline: --vad must be webrtc or silero, got "energy"\n$/],
    [['--recognizer-workers', '0'], /^voxline: --recognizer-workers must be a whole number from 1 to 64, got "0"\n$/],
    [['--role', 'gateway'], /^voxline: --role, --lease-ms and --drain-ms need --redis\n$/],
    [['--redis', 'http://x'], /^voxline: --redis must be a redis:\/\/ or rediss:\/\/ URL, got "http:\/\/x"\n$/],
    [['--redis', 'redis://127.0.0.1:1', '--role', 'boss'], /^voxline: --role must be gateway, worker or all, got "boss"\n$/],
  ])('invalid configuration %j fails at start with one clear line and exit code 2', async (args, message) => {
    const r = await voxline(args as string[]).exited;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('say writes a WAV through a running server, exactly the audio the upstream made', async () => {
    const out = join(dir, 'server.wav');
    const before = emu.requests.length;
    const r = await voxline(['say', 'Through the running server, word for word.', '--out', out, '--server', wsUrl, '--voice', 'troy', '--token', 'cli-key']).exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*server\.wav \(\d+\.\d\d s, 24000 Hz\)/);
    expect(r.stderr).toMatch(/voxline: \d+\.\d s of audio\n$/);
    const { samples, rate } = readWav(out);
    expect(rate).toBe(24_000);
    const sent = concatInt16(emu.requests.slice(before).map((q) => q.samples));
    expect(Buffer.from(samples.buffer).equals(Buffer.from(sent.buffer))).toBe(true);
  });

  it('say with a wrong key reports the refusal and exits 1', async () => {
    const r = await voxline(['say', 'No.', '--out', join(dir, 'no.wav'), '--server', wsUrl, '--token', 'wrong']).exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^voxline say: unauthorized: /m);
  });

  it('say with the embedded voice needs no server, and reads text from stdin with "-"', async () => {
    const out = join(dir, 'embedded.wav');
    const r = await voxline(['say', '-', '--out', out, '--sample-rate', '16000'], { input: 'The embedded voice speaks offline.\n' }).exited;
    expect(r.code, r.stderr).toBe(0);
    const { samples, rate } = readWav(out);
    expect(rate).toBe(16_000);
    expect(samples.length).toBeGreaterThan(16_000);
    expect(samples.reduce((m, s) => Math.max(m, Math.abs(s)), 0)).toBeGreaterThan(1_000);
  });

  it('SIGTERM with a live utterance: it ends once (failed, shutting_down), the socket closes 1001, exit 0; a second signal exits at once', async () => {
    const p = voxline(['--port', '0', '--log-level', 'silent', '--espeak-workers', '1'], { until: /listening on (http:\/\/\S+)/ });
    await p.ready;
    const ws = /voice endpoint (ws:\/\/\S+)\)/.exec(p.run.stdout)![1]!;
    const c = await TestVoiceClient.start(ws);
    c.send({ type: 'speak', id: 'long', text: 'A long answer. '.repeat(200) });
    await c.waitFor(() => c.frames.find((f) => f.kind === 'audio'));
    p.child.kill('SIGTERM');
    expect(await c.waitForEnd('long')).toMatchObject({ reason: 'failed', error: { code: 'shutting_down' } });
    expect(await c.waitForClose()).toBe(1001);
    expect((await p.exited).code).toBe(0);

    const q = voxline(['--port', '0', '--log-level', 'silent', '--espeak-workers', '1'], { until: /listening on/ });
    await q.ready;
    q.child.kill('SIGTERM');
    q.child.kill('SIGTERM');
    expect([0, 130]).toContain((await q.exited).code);
  });

  it('serve starts, answers /healthz and /metrics, and drains to exit 0 on SIGTERM', async () => {
    const keys = join(dir, 'keys');
    writeFileSync(keys, '# one key per line\nserve-key\n');
    const p = voxline(['serve', '--port', '0', '--keys-file', keys, '--log-level', 'warn', '--espeak-workers', '1'], { until: /listening on (http:\/\/\S+)/ });
    await p.ready;
    const base = /listening on (http:\/\/\S+)/.exec(p.run.stdout)![1]!;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('voxline_sessions 0');
    p.child.kill('SIGTERM');
    const r = await p.exited;
    expect(r.code).toBe(0);
  });
});
