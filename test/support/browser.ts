/// <reference lib="dom" />
// Debian's Chromium driven by playwright-core, plus an AudioWorklet tap that records what
// the page actually played, render quantum by render quantum, with its timeline frame.
import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const screenshotDir = join(process.cwd(), 'test-artifacts', 'screenshots');

/** Browser tests never skip: without Chromium they fail and say how to get it. */
export async function launchChromium(): Promise<BrowserContext> {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}. Install it (apt-get install -y chromium) or set CHROMIUM_PATH; browser tests do not skip.`);
  }
  const userDataDir = await mkdtemp(join(tmpdir(), 'voxline-chromium-'));
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
    viewport: { width: 1200, height: 760 },
  });
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(screenshotDir, { recursive: true });
  await page.screenshot({ path: join(screenshotDir, `${name}.png`) });
}

/**
 * Installs, inside the page, a pass-through AudioWorklet between the page's master gain and
 * the destination that records every non-silent render quantum, and helpers the tests use:
 * per-stream received PCM, start frames, finish events, speak.end events with the frame they
 * arrived at, and the frame of each Stop click. `window.__tapFollow(client, player, playback)`
 * follows another session of the page (the Talk mode's VoiceAgent).
 */
export async function installTap(page: Page): Promise<void> {
  await page.waitForFunction(() => (window as unknown as { voxline?: unknown }).voxline !== undefined);
  await page.evaluate(async () => {
    const w = window as unknown as Record<string, any>;
    const { context, master, client, player, playback } = w.voxline;
    const code = `class Tap extends AudioWorkletProcessor {
      constructor() { super(); this.n = 0; }
      process(inputs, outputs) {
        this.n++;
        const input = inputs[0] && inputs[0][0];
        const output = outputs[0][0];
        if (input) {
          output.set(input);
          for (let i = 0; i < input.length; i++) if (input[i] !== 0) { this.port.postMessage({ frame: currentFrame, n: this.n, data: input.slice() }); break; }
        }
        return true;
      }
    }
    registerProcessor('tap', Tap);`;
    await context.audioWorklet.addModule(URL.createObjectURL(new Blob([code], { type: 'application/javascript' })));
    const tap = new AudioWorkletNode(context, 'tap', { outputChannelCount: [1] });
    master.disconnect();
    master.connect(tap);
    tap.connect(context.destination);
    const t = { quanta: [] as { frame: number; n: number; data: Float32Array }[], received: new Map(), starts: new Map(), finished: [] as unknown[], ends: [] as unknown[], stopFrames: [] as number[], streamOf: new Map() };
    w.__tap = t;
    w.__tapNode = tap;
    tap.port.onmessage = (e: MessageEvent) => t.quanta.push(e.data);
    // Follows one session's client, player and playback; the Talk tests follow the VoiceAgent's
    // too (stream numbers are per session: follow one session per page).
    const follow = (client: any, player: any, playback: any) => {
      client.on('accepted', ({ id, stream }: { id: string; stream: number }) => t.streamOf.set(id, stream));
      client.on('audio', ({ stream, pcm }: { stream: number; pcm: Int16Array }) => {
        const list = t.received.get(stream) ?? [];
        list.push(...pcm);
        t.received.set(stream, list);
      });
      // With the timeline frame it arrived at: how fast playback stops after it is measured from there.
      client.on('end', (e: object) => t.ends.push({ ...e, frame: Math.round(context.currentTime * context.sampleRate) }));
      player.onStart(({ stream, startFrame }: { stream: number; startFrame: number }) => t.starts.set(stream, startFrame));
      playback.onFinished((e: unknown) => t.finished.push(e));
    };
    w.__tapFollow = follow;
    follow(client, player, playback);
    document.getElementById('stop')!.addEventListener('click', () => t.stopFrames.push(Math.round(context.currentTime * context.sampleRate)), { capture: true });
    // Chromium sometimes reports the same currentFrame for two consecutive render quanta,
    // so a quantum's frame is taken from the tap's own count of process() calls, aligned to
    // the timeline by the offset most quanta agree on.
    const frameOf = (() => {
      let cachedFor = -1;
      let offset = 0;
      return (q: { frame: number; n: number }) => {
        if (cachedFor !== t.quanta.length) {
          const votes = new Map<number, number>();
          for (const x of t.quanta) votes.set(x.frame - 128 * x.n, (votes.get(x.frame - 128 * x.n) ?? 0) + 1);
          offset = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 0;
          cachedFor = t.quanta.length;
        }
        return 128 * q.n + offset;
      };
    })();
    // What was played from `from` for `length` frames (silence where nothing was recorded).
    w.__played = (from: number, length: number) => {
      const out = new Float32Array(length);
      for (const q of t.quanta) {
        const frame = frameOf(q);
        for (let i = 0; i < q.data.length; i++) {
          const at = frame + i - from;
          if (at >= 0 && at < length) out[at] = q.data[i]!;
        }
      }
      return Array.from(out);
    };
    // The last frame with sound, at or after `from`.
    w.__lastSoundFrom = (from: number) => {
      let last = -1;
      for (const q of t.quanta) {
        const frame = frameOf(q);
        for (let i = q.data.length - 1; i >= 0; i--) {
          if (q.data[i] !== 0 && frame + i >= from) {
            last = Math.max(last, frame + i);
            break;
          }
        }
      }
      return last;
    };
  });
}

/**
 * Replaces the page's microphone, before any page script runs, with a WebAudio stream:
 * getUserMedia returns a MediaStreamDestination that is silent until `sayIntoMicrophone`
 * plays a WAV into it, as if the person spoke then. Timing is the page's own: no file loops,
 * no device, and the test decides the moment the person talks. Every getUserMedia call's
 * constraints and tracks are kept in `window.__mic` for the test to check.
 */
export async function installFakeMicrophone(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const w = window as unknown as Record<string, any>;
    const mic = { constraints: [] as unknown[], tracks: [] as MediaStreamTrack[], audio: null as AudioContext | null, destination: null as MediaStreamAudioDestinationNode | null };
    w.__mic = mic;
    navigator.mediaDevices.getUserMedia = async (constraints?: MediaStreamConstraints) => {
      mic.constraints.push(constraints);
      mic.audio ??= new AudioContext({ sampleRate: 48_000 });
      mic.destination = mic.audio.createMediaStreamDestination();
      const stream = mic.destination.stream;
      mic.tracks.push(...stream.getAudioTracks());
      return stream;
    };
  });
}

/** Plays `wav` (a whole RIFF file) into the fake microphone; resolves when it has played. */
export async function sayIntoMicrophone(page: Page, wav: Uint8Array): Promise<void> {
  await page.evaluate(async (base64: string) => {
    const mic = (window as any).__mic;
    if (!mic.destination) throw new Error('the page has not opened the microphone');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const buffer = await (mic.audio as AudioContext).decodeAudioData(bytes.buffer);
    const source = (mic.audio as AudioContext).createBufferSource();
    source.buffer = buffer;
    source.connect(mic.destination);
    await new Promise<void>((resolve) => {
      source.onended = () => resolve();
      source.start();
    });
  }, Buffer.from(wav).toString('base64'));
}
