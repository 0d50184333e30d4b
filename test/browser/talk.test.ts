/// <reference lib="dom" />
// The page's Talk mode in Debian's Chromium against the real server on 127.0.0.1, with the
// real listening stack (WebRTC VAD, PocketSphinx): the person's voice is a phrase spoken by
// the embedded voice, played into the page's microphone (getUserMedia replaced by a WebAudio
// stream), captured by the VoiceAgent's AudioWorklet and streamed up as 16 kHz frames.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echoChatModel, words } from '../../src/agent/echoChatModel.js';
import { withDeadlines } from '../../src/agent/deadlines.js';
import type { ChatModel } from '../../src/agent/types.js';
import { wavHeader } from '../../src/audio/pcm.js';
import { createListening } from '../../src/listening/listening.js';
import { listenSampleRate } from '../../src/listening/types.js';
import { espeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { installFakeMicrophone, installTap, launchChromium, sayIntoMicrophone, screenshot } from '../support/browser.js';
import { settle } from '../support/settle.js';
import { speechRenderer, type SpeechRenderer } from '../support/speechAudio.js';

const rate = 24_000; // the page's AudioContext, at the replies' PCM rate
const phrases = ['turn on the kitchen lights', 'what time is it', 'play some music', 'stop the music', 'tell me a story'];

const story = {
  /**
   * Written at once: a short sentence (the first piece the speaker synthesizes alone), then a
   * long one, about ten seconds of speech without a gap between them.
   */
  opening:
    'Once upon a time, there was an old sailor. He lived in a small town by the sea, and every evening he told the same long story to anyone who would sit down and listen to him for a while. ',
  /** Then a word every 120 ms, as a model writes: the reply's utterance stays open meanwhile (about 7 s). */
  rest:
    'Every night the story grew a little longer. The children of the town knew every word of it by heart, and they would whisper the best parts along with him. And still they came back to hear it again, evening after evening, until the lamps were lit along the harbour and their mothers called them home.',
  wordMs: 120,
};

/**
 * The embedded echo model, except that asked for a story it tells one the way a language model
 * writes: a first sentence, then a word at a time. A short echo is spoken, and ended on the wire,
 * long before anyone could talk over it; a reply still being written is what a person interrupts.
 */
function storyteller(): ChatModel {
  const echo = echoChatModel();
  return {
    name: 'storyteller',
    async *stream(request) {
      const heard = [...request.messages].reverse().find((m) => m.role === 'user')?.content.trim();
      if (heard !== 'tell me a story') {
        yield* echo.stream(request);
        return;
      }
      yield story.opening;
      for (const word of words(story.rest)) {
        await new Promise((resolve) => setTimeout(resolve, story.wordMs));
        if (request.signal.aborted) return;
        yield word;
      }
    },
  };
}

let voxline: VoxlineServer;
let browser: BrowserContext;
let page: Page;
let speech: SpeechRenderer;

beforeAll(async () => {
  const listening = await createListening();
  expect(listening.options, listening.summary).not.toBeNull();
  voxline = createVoxlineServer({ providers: [espeakProvider({ size: 2 })], listen: listening.options!, agent: { model: withDeadlines(storyteller()) } });
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
  // A wide jitter buffer: 2 cores shared with the server, its synth workers and PocketSphinx,
  // and replies paced a second ahead of playback; an underrun is a gap (see inOrder).
  await page.goto(`${url}/?tab=talk&jitterMs=300`);
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

/**
 * Every sample the server sent, played in order and exactly (float32 = s16 / 32768), allowing
 * only silence inserted between them: a reply is spoken as it is written and paced to playback
 * (a second ahead), so on a loaded machine a piece can come after the page's buffer ran dry,
 * and the player starts it after a gap (an underrun). How many is timing, not correctness, and
 * is not asserted; a sample played wrong, or out of order, is. `gaps` counts them; `mismatchAt` is the
 * first received sample not played where it should have been (-1: none); `compared` how many
 * received samples were checked before `played` ran out.
 */
function inOrder(received: number[], played: number[]): { mismatchAt: number; gaps: number; compared: number } {
  let p = 0;
  let gaps = 0;
  for (let k = 0; k < received.length; k++) {
    const want = received[k]! / 32768;
    if (played[p] !== want && played[p] === 0 && want !== 0) {
      while (p < played.length && played[p] === 0) p++;
      gaps++;
    }
    if (p >= played.length) return { mismatchAt: -1, gaps, compared: k }; // played up to here
    if (played[p] !== want) return { mismatchAt: k, gaps, compared: k };
    p++;
  }
  return { mismatchAt: -1, gaps, compared: received.length };
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
    // Stream numbers and turn ids are per session: forget the previous session's.
    const t = w.__tap;
    for (const key of ['received', 'starts', 'streamOf'] as const) t[key].clear();
    for (const key of ['ends', 'finished'] as const) t[key].length = 0;
    w.__tapFollow(agent.client, agent.player, agent.playback);
    // What the session said when, for a failure's message.
    w.__log = [];
    for (const type of ['speechStarted', 'speechStopped', 'transcript', 'accepted', 'end', 'turnEnd']) {
      agent.on(type, (e: object) => w.__log.push({ type, at: Math.round(performance.now()), ...e, stats: undefined }));
    }
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
    const droppedBefore = await page.evaluate(() => (window as any).voxline.agent.client.droppedAudioFrames as number);
    await sayIntoMicrophone(page, await wavOf('turn on the kitchen lights'));
    await page.waitForSelector(finalSaid('t1'), { timeout: 20_000 });
    expect(await page.textContent(finalSaid('t1'))).toBe('turn on the kitchen lights');
    await screenshot(page, 'talk-heard');
    const trail = (await page.textContent('#listener-trail'))!.split(' → ');
    expect(trail.slice(0, 4)).toEqual(['quiet', 'speaking', 'finalizing', 'quiet']);
    // Once the session listened, no frame was dropped (the microphone opens while it connects,
    // and frames before session.ready are dropped by design).
    expect(await page.evaluate(() => (window as any).voxline.agent.client.droppedAudioFrames as number)).toBe(droppedBefore);
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
    await sayIntoMicrophone(page, await wavOf('tell me a story'));
    await page.waitForSelector(finalSaid('t1'), { timeout: 20_000 });
    expect(await page.textContent(finalSaid('t1'))).toBe('tell me a story');
    // The reply is written (reply.text) and spoken as utterance reply:t1.
    await page.waitForFunction(() => (window as any).__tap.streamOf.has('reply:t1'), undefined, { timeout: 20_000 });
    const replyStream = await page.evaluate(() => (window as any).__tap.streamOf.get('reply:t1') as number);
    await page.waitForSelector('#turn-chart[data-state="speaking"]');
    // The person talks over it once its first sentence was heard whole (3 s in): the server
    // counts what was heard by whole pieces of text, and the part of one still being sent as nothing.
    const interruption = await wavOf('turn on the kitchen lights', { leadMs: 0 });
    await page.waitForFunction(
      ({ s, rate }) => {
        const t = (window as any).__tap;
        const start = t.starts.get(s);
        return start !== undefined && (window as any).__lastSoundFrom(start) > start + 3 * rate;
      },
      { s: replyStream, rate },
      { timeout: 10_000 },
    );
    await screenshot(page, 'talk-replying');
    const bargeIn = sayIntoMicrophone(page, interruption);
    const end = await page.waitForFunction(
      (s) => (window as any).__tap.ends.find((e: { stream: number }) => e.stream === s),
      replyStream,
      { timeout: 10_000 },
    );
    const { reason, frame: endFrame } = (await end.jsonValue()) as { reason: string; frame: number };
    expect(reason, JSON.stringify(await page.evaluate(() => (window as any).__log))).toBe('interrupted');
    await page.waitForSelector('#conversation .turn[data-turn="t1"][data-status="interrupted"]', { timeout: 10_000 });
    await screenshot(page, 'talk-interrupted');
    await bargeIn;
    await page.waitForTimeout(300);
    // Silent within 150 ms of the speak.end, on the page's own audio timeline.
    // Up to where the next reply (to the words that interrupted) begins, if it already has.
    const { lastSoundMs, nextStart } = await page.evaluate(
      ({ from, stream, rate }) => {
        const t = (window as any).__tap;
        const nextStart = Math.min(...[...t.starts.entries()].filter(([s, f]) => s !== stream && f >= from).map(([, f]) => f as number));
        const until = Math.min(nextStart, from + rate);
        const played: number[] = (window as any).__played(from, until - from);
        let last = -1;
        for (let i = played.length - 1; i >= 0; i--) if (played[i] !== 0) { last = i; break; }
        return { lastSoundMs: (last * 1000) / rate, nextStart };
      },
      { from: endFrame, stream: replyStream, rate },
    );
    expect(lastSoundMs, `next reply started ${((nextStart - endFrame) * 1000) / rate} ms after the cut`).toBeLessThan(150);
    // What played of the reply up to the cut is exactly what the server sent.
    const { received, played, start } = await page.evaluate(
      ({ s, endFrame }) => {
        const t = (window as any).__tap;
        const start: number = t.starts.get(s);
        // Up to a little before the cut: the render thread runs a few quanta ahead of currentTime.
        return { start, received: (t.received.get(s) ?? []) as number[], played: (window as any).__played(start, endFrame - 2_048 - start) as number[] };
      },
      { s: replyStream, endFrame },
    );
    const cut = inOrder(received, played);
    expect(cut.mismatchAt, `first mismatch at sample ${cut.mismatchAt} of ${received.length} (${cut.gaps} gaps)`).toBe(-1);
    expect(cut.compared).toBeGreaterThan(2 * rate);
    // The page shows what was heard: a beginning of the reply, shorter than all of it.
    const reply = (await page.textContent('#conversation .turn[data-turn="t1"] .reply'))!;
    const heard = (await page.textContent('#conversation .turn[data-turn="t1"] .heard'))!;
    const heardText = /^Heard: “(.*)”$/s.exec(heard)?.[1];
    expect(heardText).toBeDefined();
    expect(reply.startsWith(story.opening.trim().slice(0, 40))).toBe(true);
    expect(reply.startsWith(heardText!)).toBe(true);
    const reportsOfCut = await page.evaluate((s) => (window as any).__reports.filter((r: { stream: number }) => r.stream === s), replyStream);
    const endSeen = await page.evaluate((s) => (window as any).__tap.ends.find((e: { stream: number }) => e.stream === s), replyStream);
    expect(heardText!.length, `end ${JSON.stringify(endSeen)} reports ${JSON.stringify(reportsOfCut.slice(-2))}; cut ${((endFrame - start) * 1000) / rate} ms into the reply`).toBeGreaterThan(0);
    expect(heardText!.length).toBeLessThan(reply.length);
    // The phrase that interrupted is the next turn, answered to its end.
    await page.waitForSelector(finalSaid('t2'), { timeout: 20_000 });
    expect(await page.textContent(finalSaid('t2'))).toBe('turn on the kitchen lights');
    await page.waitForSelector('#conversation .turn[data-turn="t2"][data-status="completed"]', { timeout: 30_000 });
    await screenshot(page, 'talk-completed');
    // The second reply played whole, sample for sample, and its position went up as it played.
    // turn.end leaves with the server's speak.end, up to a second (the pacing lead) before the
    // page has played it all: wait for the page to finish.
    await page.waitForFunction(
      () => {
        const t = (window as any).__tap;
        return t.finished.some((f: { stream: number }) => f.stream === t.streamOf.get('reply:t2'));
      },
      undefined,
      { timeout: 10_000 },
    );
    const second = await page.evaluate(() => {
      const t = (window as any).__tap;
      const stream: number = t.streamOf.get('reply:t2');
      const received: number[] = t.received.get(stream) ?? [];
      // Room for gaps where audio came late (see inOrder).
      const played: number[] = (window as any).__played(t.starts.get(stream), received.length + 5 * 24_000);
      return {
        received,
        played,
        finished: t.finished.find((f: { stream: number }) => f.stream === stream),
        reports: (window as any).__reports.filter((r: { stream: number }) => r.stream === stream) as { playedMs: number; at: number }[],
      };
    });
    expect(second.received.length).toBeGreaterThan(0.5 * rate);
    const whole = inOrder(second.received, second.played);
    expect(whole, `${whole.gaps} gaps`).toMatchObject({ mismatchAt: -1, compared: second.received.length });
    expect(second.finished).toMatchObject({ how: 'played', playedMs: Math.round((second.received.length * 1000) / rate) });
    const positions = second.reports.map((r) => r.playedMs);
    expect(positions.length).toBeGreaterThanOrEqual(2);
    expect(positions.at(-1)).toBe(second.finished.playedMs);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
    // The cut reply's last report is what played before the cut: no more than reached the timeline.
    const firstReports = await page.evaluate((s) => (window as any).__reports.filter((r: { stream: number }) => r.stream === s), replyStream);
    expect(firstReports.at(-1).playedMs).toBeLessThanOrEqual(Math.round(((endFrame - start) * 1000) / rate) + 10);
    const trail = await page.textContent('#turn-trail');
    // Cut by the barge-in threshold, or (speech too short for it) by the words themselves.
    expect(trail).toMatch(/thinking → speaking → (ending → )?over \(interrupted\)/);
    expect(await page.textContent('#conversation .turn[data-turn="t2"] .reply')).toBe('You said: turn on the kitchen lights');
    await endTalk();
  }, 120_000);
});
