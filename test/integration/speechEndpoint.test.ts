// The Groq/OpenAI-compatible speech endpoint, driven by the real, unmodified `openai` and
// `groq-sdk` packages against the real server on 127.0.0.1.
import Groq from 'groq-sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatInt16 } from '../../src/audio/pcm.js';
import { WavStreamParser } from '../../src/audio/wavStreamParser.js';
import type { UtteranceEndedEvent } from '../../src/engine/voiceEngine.js';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { settle } from '../support/settle.js';

type ApiErr = InstanceType<typeof OpenAI.APIError>;
const key = 'vx-test-key-not-secret';
let emu: GroqEmulator;
let voxline: VoxlineServer;
let base: string;
let openai: OpenAI;
let groq: Groq;
const ends: UtteranceEndedEvent[] = [];

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'upstream' });
  voxline = createVoxlineServer({
    providers: [new EspeakProvider({ size: 1 }), groqProvider({ apiKey: 'upstream', baseURL: await emu.listen() })],
    apiKeys: [key],
    maxFrameBytes: 64 * 1024,
    limits: { maxTextChars: 2_000, firstAudioTimeoutMs: 2_000 },
  });
  voxline.engine.on('utteranceEnded', (e) => ends.push(e));
  base = (await voxline.listen(0, '127.0.0.1')).url;
  await voxline.engine.ready();
  openai = new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0 });
  groq = new Groq({ apiKey: key, baseURL: base, maxRetries: 0 });
});

afterAll(async () => {
  await voxline?.close();
  await emu?.close();
});

function readWav(bytes: Uint8Array): { samples: Int16Array; rate: number } {
  const parser = new WavStreamParser();
  const samples = concatInt16([parser.push(bytes), parser.end()]);
  return { samples, rate: parser.format!.sampleRate };
}

async function released(): Promise<void> {
  await settle(() => voxline.engine.stats().sessions === 0 && voxline.engine.stats().upstreamJobs === 0 && emu.stats().active === 0, 3_000);
}

describe('POST /v1/audio/speech with the openai package', () => {
  it('returns valid WAV of the expected rate and length: exactly the samples the upstream made', async () => {
    const before = emu.requests.length;
    const input = 'Hello there. This response goes through the openai package, unchanged.';
    const response = await openai.audio.speech.create({ model: 'tts-1', voice: 'groq:troy', input, response_format: 'wav' });
    expect(response.headers.get('content-type')).toBe('audio/wav');
    const { samples, rate } = readWav(new Uint8Array(await response.arrayBuffer()));
    expect(rate).toBe(24_000);
    const sent = concatInt16(emu.requests.slice(before).map((r) => r.samples));
    expect(samples.length).toBe(sent.length);
    expect(Buffer.from(samples.buffer).equals(Buffer.from(sent.buffer))).toBe(true);
    await released();
    expect(ends.at(-1)).toMatchObject({ reason: 'completed', stats: { bytes: sent.length * 2 } });
  });

  it('returns raw PCM at a requested rate with the embedded voice', async () => {
    const response = await openai.audio.speech.create({
      model: 'voxline',
      voice: 'en-us',
      input: 'Raw samples, sixteen kilohertz.',
      response_format: 'pcm',
      // @ts-expect-error: sample_rate is Groq's parameter; voxline accepts it on both paths
      sample_rate: 16_000,
    });
    expect(response.headers.get('content-type')).toBe('audio/pcm');
    expect(response.headers.get('x-sample-rate')).toBe('16000');
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(bytes.length % 2).toBe(0);
    expect(ends.at(-1)).toMatchObject({ reason: 'completed', stats: { bytes: bytes.length } });
    // 16 kHz: the engine's duration matches the byte count at that rate.
    expect(ends.at(-1)!.stats.durationMs).toBe(Math.round((bytes.length / 2 / 16_000) * 1000));
  });

  it('returns MP3 (LAME) frames', async () => {
    const response = await openai.audio.speech.create({ model: 'tts-1', voice: 'groq:troy', input: 'Compressed for the web.', response_format: 'mp3' });
    expect(response.headers.get('content-type')).toBe('audio/mpeg');
    const bytes = new Uint8Array(await response.arrayBuffer());
    // MPEG audio frame sync: 11 set bits; MPEG-2 layer III at 24 kHz.
    expect(bytes[0]).toBe(0xff);
    expect(bytes[1]! & 0xe0).toBe(0xe0);
    const upstream = emu.requests.at(-1)!.samples.length;
    // 64 kbit/s: about 8 000 bytes per second of audio.
    expect(bytes.length).toBeGreaterThan(((upstream / 24_000) * 8_000) / 2);
    expect(bytes.length).toBeLessThan(((upstream / 24_000) * 8_000) * 2 + 2_000);
  });

  it('streams: the first bytes arrive while the upstream is still producing', async () => {
    emu.configure({ realtime: 1 });
    try {
      const response = await openai.audio.speech
        .create({ model: 'tts-1', voice: 'groq:diana', input: 'A sentence long enough to take a while at real time pacing.', response_format: 'wav' })
        .asResponse();
      const reader = response.body!.getReader();
      const first = await reader.read();
      expect(first.value!.length).toBeGreaterThan(0);
      expect(emu.requests.at(-1)!.outcome).toBe('streaming');
      let total = first.value!.length;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.length;
      }
      expect(total).toBe(44 + emu.requests.at(-1)!.samples.length * 2);
    } finally {
      emu.configure({ realtime: 0 });
    }
  });

  it('the client aborting mid-response is a STOP: the upstream is released and the session ends once', async () => {
    emu.configure({ realtime: 1 });
    try {
      const endsBefore = ends.length;
      const controller = new AbortController();
      const response = await openai.audio.speech
        .create(
          { model: 'tts-1', voice: 'groq:hannah', input: 'This one is cut off by the client long before it is done speaking.' },
          { signal: controller.signal },
        )
        .asResponse();
      const reader = response.body!.getReader();
      await reader.read();
      controller.abort();
      await released();
      expect(emu.requests.at(-1)!.outcome).toBe('aborted');
      const mine = ends.slice(endsBefore);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ reason: 'stopped', cause: 'client_gone' });
    } finally {
      emu.configure({ realtime: 0 });
    }
  });

  it('errors surface as the SDK’s own classes with the real APIs’ status codes', async () => {
    const call = (body: Partial<OpenAI.Audio.SpeechCreateParams>, client = openai) =>
      client.audio.speech.create({ model: 'tts-1', voice: 'en-us', input: 'Hi.', ...body } as OpenAI.Audio.SpeechCreateParams);

    const unknownVoice = await call({ voice: 'alloy' }).catch((e: unknown) => e);
    expect(unknownVoice).toBeInstanceOf(OpenAI.BadRequestError);
    expect((unknownVoice as Error).message).toMatch(/unknown voice "alloy".*en-us.*troy/);

    const unknownModel = await call({ model: 'tts-9' }).catch((e: unknown) => e);
    expect(unknownModel).toBeInstanceOf(OpenAI.BadRequestError);
    expect((unknownModel as Error).message).toMatch(/unknown model "tts-9".*tts-1/);

    const flac = await call({ response_format: 'flac' }).catch((e: unknown) => e);
    expect(flac).toBeInstanceOf(OpenAI.BadRequestError);
    expect((flac as Error).message).toMatch(/supported: wav, pcm, mp3/);

    const tooLong = await call({ input: 'word '.repeat(500) }).catch((e: unknown) => e);
    expect(tooLong).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tooLong as ApiErr).code).toBe('text_too_long');

    const tooBig = await call({ input: 'x'.repeat(70 * 1024) }).catch((e: unknown) => e);
    expect(tooBig).toBeInstanceOf(OpenAI.APIError);
    expect((tooBig as ApiErr).status).toBe(413);

    const badKey = await call({}, new OpenAI({ apiKey: 'wrong', baseURL: `${base}/v1`, maxRetries: 0 })).catch((e: unknown) => e);
    expect(badKey).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(JSON.stringify(badKey)).not.toContain('wrong');

    emu.faults.push('server_error');
    const upstreamDown = await call({ voice: 'groq:troy' }).catch((e: unknown) => e);
    expect(upstreamDown).toBeInstanceOf(OpenAI.InternalServerError);
    expect((upstreamDown as ApiErr).status).toBe(503);
    await released();
  });
});

describe('POST /openai/v1/audio/speech with groq-sdk', () => {
  it('speaks with a Groq model and voice name, as an existing Groq app would', async () => {
    const response = await groq.audio.speech.create({ model: 'canopylabs/orpheus-v1-english', voice: 'troy', input: 'Same code, new base URL.', response_format: 'wav' });
    const { samples, rate } = readWav(new Uint8Array(await response.arrayBuffer()));
    expect(rate).toBe(24_000);
    expect(samples.length).toBe(emu.requests.at(-1)!.samples.length);
  });

  it('an upstream 429 reaches the app as groq-sdk’s RateLimitError with retry-after', async () => {
    emu.faults.push('rate_limited');
    const error = await groq.audio.speech.create({ model: 'canopylabs/orpheus-v1-english', voice: 'troy', input: 'Limited.' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Groq.RateLimitError);
    expect((error as InstanceType<typeof Groq.RateLimitError>).headers?.get('retry-after')).toBe('1');
    await new Promise((r) => setTimeout(r, 1_050)); // let the provider's gate open again
  });

  it('refuses a missing key with AuthenticationError', async () => {
    const anonymous = new Groq({ apiKey: 'nope', baseURL: base, maxRetries: 0 });
    await expect(anonymous.audio.speech.create({ model: 'canopylabs/orpheus-v1-english', voice: 'troy', input: 'x' })).rejects.toBeInstanceOf(
      Groq.AuthenticationError,
    );
  });
});
