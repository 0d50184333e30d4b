// A measured echo figure for the listener's echo guard: the assistant's own voice coming back
// through the user's microphone at -20 dB (100 ms late, no user speech) against a user talking
// at 0 dB, both through the WebRTC VAD. It prints what fraction of the echo is called speech and
// the frame levels, and asserts only that the levels separate.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadWebRtcVad } from '../../src/listening/webRtcVad.js';
import type { VoiceFrame } from '../../src/listening/types.js';
import { concatInt16 } from '../../src/audio/pcm.js';
import { gain, silence, speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';

let renderer: SpeechRenderer;

beforeAll(async () => {
  renderer = await speechRenderer();
});

afterAll(async () => {
  await renderer?.close();
});

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(frames: VoiceFrame[]): { frames: number; speechFraction: number; speechP50: number; speechP95: number; allP50: number; allP95: number } {
  // Only the frames where the signal is present: the silence around it says nothing.
  const active = frames.filter((f) => f.levelDb > -100);
  const speech = active.filter((f) => f.speech).map((f) => f.levelDb);
  const levels = active.map((f) => f.levelDb);
  return {
    frames: active.length,
    speechFraction: speech.length / active.length,
    speechP50: percentile(speech, 50),
    speechP95: percentile(speech, 95),
    allP50: percentile(levels, 50),
    allP95: percentile(levels, 95),
  };
}

it('separates a -20 dB echo of the assistant from a user at 0 dB by level', async () => {
  const vad = await loadWebRtcVad();
  const assistant = await renderer.render('Your flight to Lisbon leaves at seven forty tomorrow morning, from gate twelve.', { leadMs: 0, tailMs: 0 });
  const user = await renderer.render('Cancel that and book the later one, please.', { leadMs: 300, tailMs: 800 });

  // The echo: the assistant at -20 dB, 100 ms late, into an otherwise silent microphone.
  const echo = concatInt16([silence(300 + 100), gain(assistant, -20), silence(800)]);

  const echoVad = vad.create();
  const echoFrames = echoVad.push(echo);
  echoVad.close();
  const userVad = vad.create();
  const userFrames = userVad.push(user);
  userVad.close();

  const e = summary(echoFrames);
  const u = summary(userFrames);
  const f = (x: number) => x.toFixed(1);
  console.log(
    `echo at -20 dB: ${(100 * e.speechFraction).toFixed(0)}% of ${e.frames} frames called speech; levels of those p50 ${f(e.speechP50)} / p95 ${f(e.speechP95)} dBFS` +
      ` (all echo frames p50 ${f(e.allP50)} / p95 ${f(e.allP95)})\n` +
      `user at 0 dB: ${(100 * u.speechFraction).toFixed(0)}% of ${u.frames} frames called speech; levels of those p50 ${f(u.speechP50)} / p95 ${f(u.speechP95)} dBFS` +
      ` (all user frames p50 ${f(u.allP50)} / p95 ${f(u.allP95)})\n` +
      `separation: user speech p50 - echo speech p95 = ${f(u.speechP50 - e.speechP95)} dB`,
  );
  // A level threshold between the two lets the guard ignore echo and still hear the user. Measured
  // here: ~9.7 dB (20 dB of echo loss minus the ~9 dB between a voice's p50 and p95 frames), so a
  // threshold at the midpoint has ~5 dB each side; 6 dB is the least that leaves a usable margin.
  expect(u.speechP50 - e.speechP95).toBeGreaterThanOrEqual(6);
});
