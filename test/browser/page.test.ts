/// <reference lib="dom" />
// The page at `/` in Debian's Chromium against the real server on 127.0.0.1. What was
// played is captured by an AudioWorklet tap and compared, sample for sample, with what the
// server sent.
import type { Socket } from 'node:net';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { installTap, launchChromium, screenshot } from '../support/browser.js';

const rate = 24_000;
let emu: GroqEmulator;
let voxline: VoxlineServer;
let browser: BrowserContext;
let page: Page;
const upgraded = new Set<Socket>();

beforeAll(async () => {
  emu = new GroqEmulator({ apiKey: 'upstream' });
  voxline = createVoxlineServer({
    providers: [new EspeakProvider({ size: 1 }), groqProvider({ apiKey: 'upstream', baseURL: await emu.listen() })],
    limits: { firstAudioTimeoutMs: 1_500 },
  });
  // Keep the upgraded sockets, so a test can cut one as a network would.
  voxline.server.on('upgrade', (_req, socket: Socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  });
  const { url } = await voxline.listen(0, '127.0.0.1');
  await voxline.engine.ready();
  browser = await launchChromium();
  page = await browser.newPage();
  page.on('pageerror', (error) => {
    throw error;
  });
  // A wider jitter buffer than the page's default 60 ms: the machine is 2 cores shared with
  // the server and the emulator, and an underrun (a real gap) would fail the exact comparisons.
  await page.goto(`${url}/?jitterMs=150`);
  await page.waitForSelector('#connection[data-state="ready"]');
  await installTap(page);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await voxline?.close();
  await emu?.close();
});

async function say(text: string, voice: string, button: 'speak' | 'enqueue' = 'speak'): Promise<void> {
  await page.fill('#text', text);
  await page.selectOption('#voice', voice);
  await page.click(`#${button}`);
}

/** Wait until the utterance with this text's id finished playing; returns its stream. */
async function finished(count: number): Promise<void> {
  await page.waitForFunction((n) => (window as any).__tap.finished.length >= n, count, { timeout: 20_000 });
}

async function lastStream(): Promise<number> {
  return page.evaluate(() => Math.max(...[...(window as any).__tap.streamOf.values()]));
}

/** The stream's received samples and what the page played from its start frame. */
async function playedVersusReceived(stream: number, margin = 0) {
  return page.evaluate(
    ({ stream, margin }) => {
      const t = (window as any).__tap;
      const received: number[] = t.received.get(stream) ?? [];
      const start: number = t.starts.get(stream);
      const played: number[] = (window as any).__played(start - margin, received.length + 2 * margin);
      return { start, received, played };
    },
    { stream, margin },
  );
}

const finishedCount = () => page.evaluate(() => (window as any).__tap.finished.length as number);

describe('the page in Chromium', () => {
  it('plays exactly the samples the server sent, with no gap and no overlap', async () => {
    emu.configure({ realtime: 0 });
    const before = await finishedCount();
    const upstreamBefore = emu.requests.length;
    await say('Hello from the browser. This sentence is played and captured sample for sample.', 'groq:troy');
    await page.waitForSelector('#indicator[data-state="speaking"]');
    await screenshot(page, 'speaking');
    await finished(before + 1);
    await page.waitForSelector('#indicator[data-state="idle"]');
    await screenshot(page, 'idle');
    const stream = await lastStream();
    const { received, played } = await playedVersusReceived(stream, 240);
    // What the server sent is exactly what the upstream made.
    const upstream = emu.requests.slice(upstreamBefore).flatMap((r) => [...r.samples]);
    expect(received).toEqual(upstream);
    // 10 ms of silence each side (nothing else overlapping), then every sample, in place.
    expect(played.slice(0, 240).every((x) => x === 0)).toBe(true);
    expect(played.slice(240 + received.length).every((x) => x === 0)).toBe(true);
    const expected = received.map((s) => s / 32768);
    const bad = expected.flatMap((x, i) => (played[240 + i] !== x ? [i] : []));
    expect(bad.length, `mismatch at ${bad.slice(0, 10).join(',')} … ${bad.slice(-5).join(',')} of ${expected.length}; e.g. played ${played[240 + bad[0]!]} expected ${expected[bad[0]!]}`).toBe(0);
  });

  it('plays the second message after the first, every time (20 rounds)', async () => {
    for (let i = 0; i < 20; i++) {
      const before = await finishedCount();
      await say(`Message number ${i + 1}.`, 'groq:diana');
      await finished(before + 1);
      const stream = await lastStream();
      const { received, played } = await playedVersusReceived(stream);
      expect(received.length).toBeGreaterThan(0);
      expect(played.filter((x, k) => x !== received[k]! / 32768).length, `round ${i + 1}`).toBe(0);
    }
    await page.waitForSelector('#indicator[data-state="idle"]');
  });

  it('STOP silences playback within 100 ms of the click and the page returns to idle', async () => {
    emu.configure({ realtime: 1 });
    try {
      const before = await finishedCount();
      // Quanta accumulate over the whole page: wait for 40 more, i.e. this utterance is audible.
      const quantaBefore = await page.evaluate(() => (window as any).__tap.quanta.length as number);
      await say('This is a long utterance that will be stopped in the middle of a sentence, well before its end, by the stop button.', 'groq:hannah');
      await page.waitForFunction((n) => (window as any).__tap.quanta.length > n + 40, quantaBefore, { timeout: 10_000 });
      const stream = await lastStream();
      await page.click('#stop');
      await page.waitForSelector('#indicator[data-state="idle"]', { timeout: 2_000 });
      await screenshot(page, 'stopped');
      await finished(before + 1);
      await page.waitForTimeout(400);
      const { stopFrame, lastSound, end } = await page.evaluate((s) => {
        const t = (window as any).__tap;
        const stopFrame: number = t.stopFrames.at(-1);
        return { stopFrame, lastSound: (window as any).__lastSoundFrom(stopFrame) as number, end: t.ends.find((e: any) => e.stream === s) };
      }, stream);
      expect(end).toMatchObject({ reason: 'stopped' });
      // Nothing audible 100 ms after the click (the worklet records every quantum with sound).
      expect(lastSound).toBeLessThan(stopFrame + 0.1 * rate);
    } finally {
      emu.configure({ realtime: 0 });
    }
  });

  it('a new message while one plays cuts the old one and plays the new one', async () => {
    emu.configure({ realtime: 1 });
    try {
      const before = await finishedCount();
      await say('The first message is long and will be cut off by the second one before it is done.', 'groq:austin');
      await page.waitForFunction((n) => (window as any).__tap.quanta.length > n + 30, await page.evaluate(() => (window as any).__tap.quanta.length as number));
      const first = await lastStream();
      await say('Second message.', 'groq:austin');
      await finished(before + 2);
      const second = await lastStream();
      expect(second).not.toBe(first);
      const ends = await page.evaluate(() => (window as any).__tap.ends as { stream: number; reason: string }[]);
      expect(ends.find((e) => e.stream === first)?.reason).toBe('superseded');
      const { received, played, start } = await playedVersusReceived(second);
      expect(played.filter((x, k) => x !== received[k]! / 32768).length).toBe(0);
      // Nothing of the first after the second began.
      const firstSamples = await page.evaluate((s) => (window as any).__tap.received.get(s).length as number, first);
      expect(firstSamples).toBeGreaterThan(0);
      const lastSound = await page.evaluate((from) => (window as any).__lastSoundFrom(from) as number, start + received.length);
      expect(lastSound).toBeLessThan(start + received.length);
    } finally {
      emu.configure({ realtime: 0 });
    }
  });

  it('never stays on "speaking": every end reason brings the page back to idle', async () => {
    const cases: { fault: 'server_error' | 'stall_before_first_byte' | 'malformed' | null; reason: string }[] = [
      { fault: 'server_error', reason: 'failed' },
      { fault: 'malformed', reason: 'failed' },
      { fault: 'stall_before_first_byte', reason: 'timeout' },
      { fault: null, reason: 'completed' },
    ];
    for (const c of cases) {
      const before = await finishedCount();
      if (c.fault) emu.faults.push(c.fault);
      await say(`Checking the ${c.reason} path.`, 'groq:daniel');
      await finished(before + 1);
      await page.waitForSelector('#indicator[data-state="idle"]', { timeout: 3_000 });
      const end = await page.evaluate(() => (window as any).__tap.ends.at(-1));
      expect(end.reason).toBe(c.reason);
    }
  });

  it('works offline with the embedded voice, in English and Arabic', async () => {
    for (const [text, voice] of [
      ['The embedded voice needs no network.', 'espeak:en-us'],
      ['مرحبا، هذا صوت مدمج.', 'espeak:ar'],
    ] as const) {
      const before = await finishedCount();
      await say(text, voice);
      await finished(before + 1);
      const { received, played } = await playedVersusReceived(await lastStream());
      expect(received.length).toBeGreaterThan(rate / 4);
      expect(played.filter((x, k) => x !== received[k]! / 32768).length).toBe(0);
    }
  });

  it('shows a dropped connection mid-utterance and recovers by reconnecting', async () => {
    emu.configure({ realtime: 1 });
    try {
      const before = await finishedCount();
      await say('This utterance loses its connection halfway through, and the page must notice.', 'groq:troy');
      await page.waitForSelector('#indicator[data-state="speaking"]');
      await page.waitForFunction(() => (window as any).__tap.quanta.length > 0);
      for (const socket of upgraded) socket.destroy(); // the network drops, no close frame
      await page.waitForSelector('#connection[data-state="reconnecting"]', { timeout: 5_000 });
      expect(await page.getAttribute('#indicator', 'data-state')).not.toBe('speaking');
      await screenshot(page, 'reconnecting');
      await finished(before + 1); // the cut utterance finished playing (as "cut") exactly once
      await page.waitForSelector('#connection[data-state="ready"]', { timeout: 10_000 });
      await page.waitForSelector('#indicator[data-state="idle"]');
      emu.configure({ realtime: 0 });
      await say('Back again.', 'groq:troy');
      await finished(before + 2);
      const end = await page.evaluate(() => (window as any).__tap.ends.at(-1));
      expect(end.reason).toBe('completed');
      const states = await page.evaluate(() => document.getElementById('path')!.dataset.phase);
      expect(states).toBe('idle');
    } finally {
      emu.configure({ realtime: 0 });
    }
  });

  it('draws the live statechart from the server: idle → connecting → streaming → stopping', async () => {
    const phases: string[] = await page.evaluate(async () => {
      const seen: string[] = [];
      const { client } = (window as any).voxline;
      const off = client.on('session', ({ state }: { state: string }) => seen.push(state));
      (window as any).__phases = { seen, off };
      return seen;
    });
    expect(phases).toEqual([]);
    emu.configure({ realtime: 1 });
    try {
      await say('Watch the statechart move through its states.', 'groq:autumn');
      await page.waitForSelector('.state.on[data-phase="streaming"]', { timeout: 5_000 });
      await page.click('#stop');
      await page.waitForSelector('.state.on[data-phase="idle"]', { timeout: 5_000 });
      const seen = await page.evaluate(() => {
        const p = (window as any).__phases;
        p.off();
        return p.seen as string[];
      });
      const order = ['connecting', 'streaming', 'idle'].map((s) => seen.indexOf(s));
      expect(order.every((i) => i >= 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect(seen.some((s) => s === 'stopping' || s === 'releasing')).toBe(true);
    } finally {
      emu.configure({ realtime: 0 });
    }
  });
});
