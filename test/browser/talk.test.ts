/// <reference lib="dom" />
// The page's Talk mode in Debian's Chromium against the real server on 127.0.0.1, with the
// real listening stack (WebRTC VAD, PocketSphinx): the person's voice is a phrase spoken by
// the embedded voice, played into the page's microphone (getUserMedia replaced by a WebAudio
// stream), captured by the VoiceAgent's AudioWorklet and streamed up as 16 kHz frames.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wavHeader } from '../../src/audio/pcm.js';
import { createListening } from '../../src/listening/listening.js';
import { listenSampleRate } from '../../src/listening/types.js';
import { espeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { installFakeMicrophone, installTap, launchChromium, sayIntoMicrophone, screenshot } from '../support/browser.js';
import { settle } from '../support/settle.js';
import { speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';

const rate = 24_000; // the page's AudioContext, at the replies' PCM rate
const phrases = ['turn on the kitchen lights', 'what time is it', 'play some music', 'stop the music', 'good morning'];

let voxline: VoxlineServer;
let browser: BrowserContext;
let page: Page;
let speech: SpeechRenderer;

beforeAll(async () => {
  const listening = await createListening();
  expect(listening.options, listening.summary).not.toBeNull();
  voxline = createVoxlineServer({ providers: [espeakProvider({ size: 2 })], listen: listening.options! });
  const { url } = await voxline.listen(0, '127.0.0.1');
  await voxline.engine.ready();
  speech = await speechRenderer();
  browser = await launchChromium();
  await installFakeMicrophone(browser);
  page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (error) => {
    throw error;
  });
  // The wider jitter buffer of page.test.ts: 2 cores shared with the server and PocketSphinx.
  await page.goto(`${url}/?tab=talk&jitterMs=150`);
  await page.waitForSelector('#connection[data-state="ready"]');
  await installTap(page);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await voxline?.close();
  await speech?.close();
});

/** A phrase spoken by the embedded voice as a 16 kHz WAV file, with silence around it. */
async function wavOf(text: string, options: { leadMs?: number; tailMs?: number } = {}): Promise<Uint8Array> {
  const pcm = await speech.render(text, { leadMs: options.leadMs ?? 200, tailMs: options.tailMs ?? 1_000 });
  const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  return concatBytes(wavHeader(listenSampleRate, bytes.length), bytes);
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Start Talk with the test's phrases in the given mode; resolves once the session listens and the mic is open. */
async function startTalk(mode: 'hands-free' | 'push-to-talk'): Promise<void> {
  // The phrases field sits in a closed <details>: set it as the page reads it.
  await page.$eval('#phrases', (el, text) => ((el as HTMLTextAreaElement).value = text), phrases.join('\n'));
  await page.click(mode === 'hands-free' ? 'label:has(#mode-hands-free)' : 'label:has(#mode-push-to-talk)');
  await page.click('#talk-start');
  await page.waitForSelector(`#mic[data-state="${mode === 'hands-free' ? 'live' : 'muted'}"]`, { timeout: 10_000 });
  await page.waitForFunction(() => (window as any).voxline.agent?.client.listenFormat?.sampleRate === 16_000, undefined, { timeout: 10_000 });
  // Follow the agent's session with the tap: its streams, ends and what played.
  await page.evaluate(() => {
    const w = window as any;
    const { agent } = w.voxline;
    w.__tapFollow(agent.client, agent.player, agent.playback);
    // Every playback report the agent sends, with when (ms on the page's clock).
    w.__reports = [];
    const report = agent.client.reportPlayback.bind(agent.client);
    agent.client.reportPlayback = (stream: number, playedMs: number) => {
      w.__reports.push({ stream, playedMs, at: performance.now() });
      report(stream, playedMs);
    };
  });
}

async function endTalk(): Promise<void> {
  await page.click('#talk-start');
  await page.waitForSelector('#mic[data-state="off"]');
}

const finalSaid = (turn: string) => `#conversation .turn[data-turn="${turn}"] .said[data-final="true"]`;

describe('Talk mode in Chromium: the microphone heard by the real listening stack', () => {
  it('hands-free: the person says a phrase and the page shows it, with the listener chart moving quiet → speaking → finalizing → quiet', async () => {
    await startTalk('hands-free');
    const constraints = await page.evaluate(() => (window as any).__mic.constraints.at(-1));
    expect(constraints.audio).toMatchObject({ echoCancellation: true, noiseSuppression: true, autoGainControl: true });
    await sayIntoMicrophone(page, await wavOf('turn on the kitchen lights'));
    await page.waitForSelector(finalSaid('t1'), { timeout: 20_000 });
    expect(await page.textContent(finalSaid('t1'))).toBe('turn on the kitchen lights');
    await screenshot(page, 'talk-heard');
    const trail = (await page.textContent('#listener-trail'))!.split(' → ');
    expect(trail.slice(0, 4)).toEqual(['quiet', 'speaking', 'finalizing', 'quiet']);
    // Frames went up in real time, 20 ms of 16 kHz each, none dropped.
    const dropped = await page.evaluate(() => (window as any).voxline.agent.client.droppedAudioFrames as number);
    expect(dropped).toBe(0);
    await endTalk();
  }, 60_000);

  it('push-to-talk: nothing is heard until held; held, the phrase is one turn, ended by the release (input.commit)', async () => {
    await startTalk('push-to-talk');
    // Not held: the microphone is muted, so this phrase starts no turn.
    await sayIntoMicrophone(page, await wavOf('play some music', { tailMs: 300 }));
    expect(await page.$$('#conversation .turn')).toHaveLength(0);
    await page.hover('#talk-hold');
    await page.mouse.down();
    await page.waitForSelector('#mic[data-state="live"]');
    // A short tail: the release, not 700 ms of silence, ends this speech.
    await sayIntoMicrophone(page, await wavOf('what time is it', { tailMs: 150 }));
    await page.mouse.up();
    await page.waitForSelector('#mic[data-state="muted"]');
    await page.waitForSelector(finalSaid('t1'), { timeout: 20_000 });
    expect(await page.textContent(finalSaid('t1'))).toBe('what time is it');
    await screenshot(page, 'talk-push-to-talk');
    await endTalk();
  }, 60_000);

  it('close() three times is harmless: tracks stopped, capture silent, socket closed, the server released the session', async () => {
    await startTalk('hands-free');
    const sessionsWhileTalking = voxline.engine.stats().sessions;
    const after = await page.evaluate(async () => {
      const w = window as any;
      const agent = w.voxline.agent;
      agent.close();
      agent.close();
      agent.close();
      const dropped = agent.client.droppedAudioFrames;
      await new Promise((r) => setTimeout(r, 200));
      return {
        tracks: (w.__mic.tracks as MediaStreamTrack[]).map((t) => t.readyState),
        microphone: agent.microphone,
        client: agent.client.state,
        // Closed capture hands no frame to the client any more (not even to drop).
        framesAfterClose: agent.client.droppedAudioFrames - dropped,
      };
    });
    expect(after.tracks.every((s) => s === 'ended')).toBe(true);
    expect(after).toMatchObject({ microphone: 'off', client: 'closed', framesAfterClose: 0 });
    await settle(() => voxline.engine.stats().sessions < sessionsWhileTalking, 5_000, 'the talk session released');
    await endTalk(); // the page's End button closes it a fourth time
  }, 60_000);
});

describe('Talk mode in Chromium: the agent answers, is talked over, and the page shows what was heard', () => {
  it('a phrase, its transcript, the reply written and played sample for sample; talked over, the reply stops within 150 ms and the page shows what was heard', async () => {
    await startTalk('hands-free');
    await sayIntoMicrophone(page, await wavOf('what time is it'));
    await page.waitForSelector(finalSaid('t1'), { timeout: 20_000 });
    expect(await page.textContent(finalSaid('t1'))).toBe('what time is it');
    // The reply is written (reply.text) and spoken as utterance reply:t1.
    await page.waitForFunction(() => (window as any).__tap.streamOf.has('reply:t1'), undefined, { timeout: 20_000 });
    const replyStream = await page.evaluate(() => (window as any).__tap.streamOf.get('reply:t1') as number);
    await page.waitForSelector('#turn-chart[data-state="speaking"]');
    // Audible for a while (quanta with sound from the reply's start), then the person talks over it.
    await page.waitForFunction(
      (s) => {
        const t = (window as any).__tap;
        const start = t.starts.get(s);
        return start !== undefined && (window as any).__lastSoundFrom(start) > start + 0.3 * 24_000;
      },
      replyStream,
      { timeout: 10_000 },
    );
    await screenshot(page, 'talk-replying');
    const bargeIn = sayIntoMicrophone(page, await wavOf('stop the music', { leadMs: 0 }));
    const end = await page.waitForFunction(
      (s) => (window as any).__tap.ends.find((e: { stream: number }) => e.stream === s),
      replyStream,
      { timeout: 10_000 },
    );
    const { reason, frame: endFrame } = (await end.jsonValue()) as { reason: string; frame: number };
    expect(reason).toBe('interrupted');
    await page.waitForSelector('#conversation .turn[data-turn="t1"][data-status="interrupted"]', { timeout: 10_000 });
    await bargeIn;
    await page.waitForTimeout(300);
    // Silent within 150 ms of the speak.end, on the page's own audio timeline.
    const lastSound = await page.evaluate((from) => (window as any).__lastSoundFrom(from) as number, endFrame);
    expect(lastSound).toBeLessThan(endFrame + 0.15 * rate);
    // What played of the reply up to the cut is exactly what the server sent.
    const { start, received, played } = await page.evaluate((s) => {
      const t = (window as any).__tap;
      const received: number[] = t.received.get(s) ?? [];
      const start: number = t.starts.get(s);
      return { start, received, played: (window as any).__played(start, received.length) as number[] };
    }, replyStream);
    const heardSamples = Math.min(received.length, endFrame - start - 2_048); // the render thread runs a few quanta ahead
    expect(heardSamples).toBeGreaterThan(0.3 * rate);
    const bad = received.slice(0, heardSamples).filter((x, k) => played[k] !== x / 32768).length;
    expect(bad).toBe(0);
    // The page shows what was heard: a beginning of the reply, shorter than all of it.
    const reply = (await page.textContent('#conversation .turn[data-turn="t1"] .reply'))!;
    const heard = (await page.textContent('#conversation .turn[data-turn="t1"] .heard'))!;
    const heardText = /^Heard: “(.*)”$/s.exec(heard)?.[1];
    expect(heardText).toBeDefined();
    expect(reply.startsWith(heardText!)).toBe(true);
    expect(heardText!.length).toBeLessThan(reply.length);
    await screenshot(page, 'talk-interrupted');
    // The phrase that interrupted is the next turn, answered to its end.
    await page.waitForSelector(finalSaid('t2'), { timeout: 20_000 });
    expect(await page.textContent(finalSaid('t2'))).toBe('stop the music');
    await page.waitForSelector('#conversation .turn[data-turn="t2"][data-status="completed"]', { timeout: 30_000 });
    await screenshot(page, 'talk-completed');
    // The second reply played whole, sample for sample, and its position went up as it played.
    const second = await page.evaluate(() => {
      const t = (window as any).__tap;
      const stream: number = t.streamOf.get('reply:t2');
      const received: number[] = t.received.get(stream) ?? [];
      const played: number[] = (window as any).__played(t.starts.get(stream), received.length);
      return {
        received,
        mismatches: received.filter((x, k) => played[k] !== x / 32768).length,
        finished: t.finished.find((f: { stream: number }) => f.stream === stream),
        reports: (window as any).__reports.filter((r: { stream: number }) => r.stream === stream) as { playedMs: number; at: number }[],
      };
    });
    expect(second.received.length).toBeGreaterThan(0.5 * rate);
    expect(second.mismatches).toBe(0);
    expect(second.finished).toMatchObject({ how: 'played', playedMs: Math.round((second.received.length * 1000) / rate) });
    const positions = second.reports.map((r) => r.playedMs);
    expect(positions.length).toBeGreaterThanOrEqual(2);
    expect(positions.at(-1)).toBe(second.finished.playedMs);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    // The cut reply's last report is what played before the cut: no more than reached the timeline.
    const firstReports = await page.evaluate((s) => (window as any).__reports.filter((r: { stream: number }) => r.stream === s), replyStream);
    expect(firstReports.at(-1).playedMs).toBeLessThanOrEqual(Math.round(((endFrame - start) * 1000) / rate) + 10);
    const trail = await page.textContent('#turn-trail');
    expect(trail).toContain('thinking → speaking → interrupted');
    await endTalk();
  }, 120_000);
});
