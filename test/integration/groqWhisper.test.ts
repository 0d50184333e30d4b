// Groq Whisper speech-to-text through the real groq-sdk against the Groq emulator on
// 127.0.0.1: what goes up (a WAV of the turn, the language, the prompt), what comes back,
// every fault ending its job once with its typed code, cancellation reaching the upstream
// request, the bounds, and the emulator's own refusals. Nothing is mocked.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { recognizersFromEnv } from '../../src/config/providersFromEnv.js';
import type { UpstreamFault } from '../../src/emulators/faults.js';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { GroqWhisperRecognizer, promptFrom, type GroqWhisperOptions } from '../../src/listening/groqWhisper.js';
import { listenSampleRate, RecognitionError, type RecognitionRequest } from '../../src/listening/types.js';
import { int16ToBytes, wavHeader } from '../../src/audio/pcm.js';
import { settle } from '../support/settle.js';

const key = 'gsk_test_not_a_real_key';
const timeoutMs = 800;
let emu: GroqEmulator;
let recognizer: GroqWhisperRecognizer;
/** Waits far longer than the cancel tests do: an abort they see came from the cancel, not the deadline. */
let patient: GroqWhisperRecognizer;
const made: GroqWhisperRecognizer[] = [];

function make(options: Partial<GroqWhisperOptions> = {}): GroqWhisperRecognizer {
  const r = new GroqWhisperRecognizer({ apiKey: key, baseURL: emu.url, requestTimeoutMs: timeoutMs, ...options });
  made.push(r);
  return r;
}

/** `ms` of a 220 Hz tone at 16 kHz, different for each `seed` so uploads can be compared. */
function tone(ms: number, seed = 1): Int16Array {
  const out = new Int16Array(Math.round((ms * listenSampleRate) / 1000));
  for (let i = 0; i < out.length; i++) out[i] = Math.round(Math.sin((2 * Math.PI * (200 + seed * 20) * i) / listenSampleRate) * 8000);
  return out;
}

/** One turn: the audio written in 20 ms frames, as the listener does, then finish(). */
function turn(r: GroqWhisperRecognizer, pcm: Int16Array, request: Partial<RecognitionRequest> = {}) {
  const job = r.start({ language: 'en', signal: new AbortController().signal, ...request });
  for (let i = 0; i < pcm.length; i += 320) job.write(pcm.subarray(i, i + 320));
  return { job, result: job.finish() };
}

async function failure(promise: Promise<unknown>): Promise<RecognitionError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the job to fail');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RecognitionError);
  return error as RecognitionError;
}

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: key, retryAfterSeconds: 0.3 });
  await emu.listen();
  recognizer = make();
  patient = make({ requestTimeoutMs: 10_000 });
});

afterEach(async () => {
  emu.transcriptionFaults.clear();
  emu.transcripts.length = 0;
  emu.configure({ firstByteDelayMs: 0, maxUploadBytes: 4 * 1024 * 1024 });
  // Nothing of a turn is left: no open job, no open upstream response.
  await settle(() => made.every((r) => r.openJobs === 0) && emu.stats().transcribing === 0, 3_000, 'release');
});

afterAll(async () => {
  for (const r of made) await r.close();
  await emu?.close();
});

describe('groq whisper through groq-sdk against the emulator', () => {
  it('a job gets the emulator text, trimmed; the upload is a WAV of the turn at 16 kHz with its language and model', async () => {
    emu.transcripts.push('  turn on the lights \n');
    const pcm = tone(1_500, 3);
    const before = emu.transcriptions.length;
    expect(await turn(recognizer, pcm).result).toBe('turn on the lights');
    expect(emu.transcriptions.length).toBe(before + 1);
    const seen = emu.transcriptions.at(-1)!;
    expect(seen).toMatchObject({ model: 'whisper-large-v3-turbo', language: 'en', prompt: undefined, responseFormat: 'json', sampleRate: 16_000, audioMs: 1_500, outcome: 'completed' });
    // Sample for sample what was written: the WAV was whole and correctly framed.
    expect(Buffer.from(int16ToBytes(seen.samples)).equals(Buffer.from(int16ToBytes(pcm)))).toBe(true);
  });

  it('Arabic goes up as ar; without a queued text the emulator answers from the audio length', async () => {
    expect(await turn(recognizer, tone(2_340, 4), { language: 'ar' }).result).toBe('heard 2340 ms');
    expect(emu.transcriptions.at(-1)).toMatchObject({ language: 'ar', audioMs: 2_340 });
  });

  it('the phrases go up as the prompt, whole phrases only and bounded', async () => {
    await turn(recognizer, tone(300), { phrases: ['lights on', ' lights off ', ''] }).result;
    expect(emu.transcriptions.at(-1)!.prompt).toBe('lights on, lights off');
    const many = Array.from({ length: 200 }, (_, i) => `phrase number ${i}`);
    await turn(recognizer, tone(300), { phrases: many }).result;
    const prompt = emu.transcriptions.at(-1)!.prompt!;
    expect(prompt.length).toBeLessThanOrEqual(300);
    expect(prompt.startsWith('phrase number 0, phrase number 1,')).toBe(true);
    expect(prompt.endsWith(many[prompt.split(', ').length - 1]!)).toBe(true);
    expect(promptFrom(['a'.repeat(400)], 300)).toBe('');
  });

  it('no audio: an empty transcript without a request', async () => {
    const before = emu.transcriptions.length;
    expect(await turn(recognizer, new Int16Array(0)).result).toBe('');
    expect(emu.transcriptions.length).toBe(before);
  });

  const faults: Array<[UpstreamFault, string, string]> = [
    ['rate_limited', 'recognizer_busy', '429 with retry-after'],
    ['server_error', 'recognizer_failed', '500'],
    ['premature_close', 'recognizer_failed', 'connection reset before the answer'],
    ['error_mid_stream', 'recognizer_failed', 'body cut by a reset mid-JSON'],
    ['no_final_marker', 'recognizer_failed', 'body cut by a clean close mid-JSON'],
    ['malformed', 'recognizer_failed', '200 with a body that is not JSON'],
    ['huge_frame', 'recognizer_failed', 'a JSON body that never ends'],
    ['stall_before_first_byte', 'recognizer_timeout', 'no headers ever'],
    ['stall_mid_stream', 'recognizer_timeout', 'headers, half a body, then nothing'],
    ['unauthorized', 'provider_auth', '401 mid-session'],
  ];

  it.each(faults)('%s (%s): the job fails once with its code, one request only, and the next job works', async (fault, code) => {
    emu.transcriptionFaults.push(fault);
    const before = emu.transcriptions.length;
    const started = performance.now();
    const { job, result } = turn(recognizer, tone(700, 5));
    const error = await failure(result);
    const elapsed = performance.now() - started;
    expect(error.code).toBe(code);
    expect(error.message).not.toContain(key);
    if (fault === 'rate_limited') expect(error.retryAfterMs).toBe(300);
    else expect(error.retryAfterMs).toBeUndefined();
    if (code === 'recognizer_timeout') {
      expect(elapsed).toBeGreaterThanOrEqual(timeoutMs - 20);
      expect(elapsed).toBeLessThan(timeoutMs + 1_500);
      // The stalled request was given up, not left open.
      await settle(() => emu.transcriptions[before]!.outcome === 'aborted', 2_000, 'stalled request aborted');
    }
    // Once: finish() again gives the same failure, no second request (no retry inside a turn).
    expect(await failure(job.finish())).toBe(error);
    job.cancel();
    expect(emu.transcriptions.length).toBe(before + 1);
    expect(emu.transcriptions[before]!.fault).toBe(fault);

    emu.transcripts.push('after the fault');
    expect(await turn(recognizer, tone(400)).result).toBe('after the fault');
  });

  it('slow_trickle: an answer arriving three bytes at a time is still read whole', async () => {
    emu.transcriptionFaults.push('slow_trickle');
    emu.transcripts.push('slowly but surely');
    expect(await turn(recognizer, tone(400)).result).toBe('slowly but surely');
  });

  it('cancel() mid-request aborts the upstream request, three times over; finish() never yields a stale text', async () => {
    emu.configure({ firstByteDelayMs: 5_000 });
    for (let i = 0; i < 3; i++) {
      emu.transcripts.push(`stale ${i}`);
      const before = emu.transcriptions.length;
      const { job, result } = turn(patient, tone(500, i));
      const settled = result.then(
        (text) => ({ text }),
        (error: unknown) => ({ error }),
      );
      await settle(() => emu.transcriptions.length > before, 3_000, 'request arrived');
      job.cancel();
      job.cancel(); // idempotent
      const outcome = await settled;
      expect(outcome).not.toHaveProperty('text');
      expect((outcome as { error: Error }).error.name).toBe('AbortError');
      await settle(() => emu.transcriptions[before]!.outcome === 'aborted', 500, 'upstream saw the abort');
      expect(patient.openJobs).toBe(0);
    }
    // The next job, undelayed, gets its own text (the stale ones were answered to no one).
    emu.configure({ firstByteDelayMs: 0 });
    emu.transcripts.length = 0;
    emu.transcripts.push('fresh');
    expect(await turn(recognizer, tone(300)).result).toBe('fresh');
  });

  it("the request's signal cancels like cancel(); an already-aborted signal makes no request", async () => {
    emu.configure({ firstByteDelayMs: 5_000 });
    const before = emu.transcriptions.length;
    const controller = new AbortController();
    const { result } = turn(patient, tone(300), { signal: controller.signal });
    await settle(() => emu.transcriptions.length > before, 3_000, 'request arrived');
    controller.abort();
    await expect(result).rejects.toMatchObject({ name: 'AbortError' });
    await settle(() => emu.transcriptions[before]!.outcome === 'aborted', 500, 'upstream saw the abort');

    const { result: never } = turn(patient, tone(300), { signal: AbortSignal.abort() });
    await expect(never).rejects.toMatchObject({ name: 'AbortError' });
    expect(emu.transcriptions.length).toBe(before + 1);
  });

  it('a turn past the audio bound fails cleanly, without a request; the recognizer keeps working', async () => {
    const small = make({ maxAudioMs: 1_000 });
    const before = emu.transcriptions.length;
    const { job, result } = turn(small, tone(1_200));
    const error = await failure(result);
    expect(error.code).toBe('recognizer_failed');
    expect(error.message).toMatch(/longer than 1000 ms/);
    job.write(tone(100)); // ignored after the failure
    expect(small.openJobs).toBe(0);
    expect(emu.transcriptions.length).toBe(before);
    // Exactly at the bound is accepted.
    expect(await turn(small, tone(1_000)).result).toBe('heard 1000 ms');
  });

  it('a wrong key: provider_auth, and the key is in no message', async () => {
    const wrong = make({ apiKey: 'gsk_wrong_key_for_test' });
    const error = await failure(turn(wrong, tone(300)).result);
    expect(error.code).toBe('provider_auth');
    expect(error.message).not.toContain('gsk_wrong_key_for_test');
  });

  it('nobody listening: recognizer_unavailable, quickly', async () => {
    const closed = new GroqEmulator();
    const url = await closed.listen();
    await closed.close();
    const gone = make({ baseURL: url });
    const error = await failure(turn(gone, tone(300)).result);
    expect(error.code).toBe('recognizer_unavailable');
  });

  it('close() cancels open jobs and refuses new ones; unsupported languages are refused', async () => {
    const r = make({ requestTimeoutMs: 10_000 });
    emu.configure({ firstByteDelayMs: 5_000 });
    const before = emu.transcriptions.length;
    const { result } = turn(r, tone(300));
    await settle(() => emu.transcriptions.length > before, 3_000, 'request arrived');
    await r.close();
    await r.close();
    await expect(result).rejects.toMatchObject({ name: 'AbortError' });
    await settle(() => emu.transcriptions[before]!.outcome === 'aborted', 500, 'upstream saw the abort');
    expect((await failure(turn(r, tone(300)).result)).code).toBe('recognizer_unavailable');
    expect((await failure(turn(recognizer, tone(300), { language: 'fr' }).result)).code).toBe('recognizer_unavailable');
  });

  it('an upload over the emulator limit is refused (413) and the recognizer fails the job, then goes on', async () => {
    emu.configure({ maxUploadBytes: 32 * 1024 });
    const error = await failure(turn(recognizer, tone(2_000)).result);
    expect(error.code).toBe('recognizer_failed');
    expect(error.message).toContain('413');
    emu.configure({ maxUploadBytes: 4 * 1024 * 1024 });
    expect(await turn(recognizer, tone(2_000)).result).toBe('heard 2000 ms');
  });
});

describe('the emulator refuses bad transcription requests and keeps serving', () => {
  const auth = { authorization: `Bearer ${key}` };
  const endpoint = () => `${emu.url}/openai/v1/audio/transcriptions`;
  const wav = (pcm: Int16Array) => {
    const bytes = new Uint8Array(44 + pcm.byteLength);
    bytes.set(wavHeader(16_000, pcm.byteLength));
    bytes.set(int16ToBytes(pcm), 44);
    return new Blob([bytes], { type: 'audio/wav' });
  };

  function form(file: Blob, fields: Record<string, string> = { model: 'whisper-large-v3-turbo' }): FormData {
    const f = new FormData();
    f.set('file', file, 'a.wav');
    for (const [k, v] of Object.entries(fields)) f.set(k, v);
    return f;
  }

  it('malformed multipart, a wrong content type, a non-WAV file, a missing file, an unknown model: 4xx, never a crash', async () => {
    const before = emu.transcriptions.length;
    const cases: Array<[RequestInit, number]> = [
      [{ body: 'garbage without a boundary', headers: { ...auth, 'content-type': 'multipart/form-data; boundary=xyz' } }, 400],
      [{ body: '--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nunterminated', headers: { ...auth, 'content-type': 'multipart/form-data; boundary=xyz' } }, 400],
      [{ body: JSON.stringify({ model: 'whisper-large-v3-turbo' }), headers: { ...auth, 'content-type': 'application/json' } }, 400],
      [{ body: form(new Blob(['<html>not audio</html>'])), headers: auth }, 400],
      [{ body: (() => { const f = new FormData(); f.set('model', 'whisper-large-v3-turbo'); return f; })(), headers: auth }, 400],
      [{ body: form(wav(tone(100)), { model: 'whisper-tiny' }), headers: auth }, 404],
      [{ body: form(wav(tone(100))), headers: { authorization: 'Bearer nope' } }, 401],
    ];
    for (const [init, status] of cases) {
      const res = await fetch(endpoint(), { method: 'POST', ...init });
      expect(res.status).toBe(status);
      const body = (await res.json()) as { error?: { message?: unknown } };
      expect(typeof body.error?.message).toBe('string');
    }
    expect(emu.transcriptions.length).toBe(before);
    emu.transcripts.push('still here');
    expect(await turn(recognizer, tone(300)).result).toBe('still here');
  });

  it('an oversized body is refused with 413 without being buffered; the next request is served', async () => {
    emu.configure({ maxUploadBytes: 64 * 1024 });
    const res = await fetch(endpoint(), { method: 'POST', body: form(wav(tone(5_000))), headers: auth });
    expect(res.status).toBe(413);
    await res.body?.cancel();
    const ok = await fetch(endpoint(), { method: 'POST', body: form(wav(tone(1_000)), { model: 'whisper-large-v3', response_format: 'text' }), headers: auth });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('heard 1000 ms');
  });
});

describe('recognizers from the environment', () => {
  it('GROQ_API_KEY enables a groq recognizer for en and ar; without it there is none', async () => {
    expect(recognizersFromEnv({})).toEqual([]);
    const [groq, ...rest] = recognizersFromEnv({ GROQ_API_KEY: key, GROQ_BASE_URL: emu.url });
    expect(rest).toEqual([]);
    expect(groq).toMatchObject({ name: 'groq', languages: ['en', 'ar'], partials: false });
    emu.transcripts.push('from the environment');
    expect(await turn(groq as GroqWhisperRecognizer, tone(300)).result).toBe('from the environment');
    await groq!.close();
  });
});
