// The load generator: its own process (the fd limit is per process), driven by the
// orchestrator over IPC. Every scenario is bounded in count and time.
// tsx turns on source-mapped stack traces; production (`node dist/...`) runs without them, and
// every aborted fetch builds an Error, so leaving them on would bill tsx's cost to the contenders.
process.setSourceMapsEnabled(false);
import { connect, received, type BenchClient } from './clients.js';
import { epochMs, sampleRate, type ContenderName } from './common.js';
import { gatewayStampOf, stampOf } from './contenders/stampProvider.js';

export type Scenario =
  /** With `holdAfterWarmup`, the warm-up round ends with a `warm` message and the rest waits for `go`. */
  | { kind: 'ttfa'; contender: ContenderName; port: number; sessions: number; rounds: number; text: string; tag: string; holdAfterWarmup?: boolean }
  | { kind: 'stop'; contender: ContenderName; port: number; sessions: number; text: string; tag: string }
  /** With `ports` (several gateways), client i connects to ports[i % ports.length] instead of `port`. */
  | { kind: 'capacity'; contender: ContenderName; port: number; ports?: number[]; sessions: number; text: string; jitterMs: number; tag: string }
  /**
   * Per-frame latency with bench/contenders/stampProvider.ts: every session speaks `text` at
   * once; each frame's arrival minus the stamp its provider wrote when it yielded the block.
   * The first frame of each stream is reported apart (it carries the job's start), and the
   * time from each speak to its first frame.
   */
  | { kind: 'frames'; contender: ContenderName; port: number; sessions: number; text: string; tag: string; raw?: boolean }
  | { kind: 'open'; contender: ContenderName; port: number; sessions: number; speakText?: string; tag: string }
  | { kind: 'closeAll' }
  | { kind: 'sequence'; contender: ContenderName; port: number; count: number; parallel: number; text: string; tag: string };

let held: BenchClient[] = [];

async function openClients(contender: ContenderName, port: number | number[], n: number): Promise<BenchClient[]> {
  const ports = Array.isArray(port) ? port : [port];
  const clients: BenchClient[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(200, n) }, async () => {
      while (next < n) {
        const i = next++;
        clients.push(await connect(contender, ports[i % ports.length]!));
      }
    }),
  );
  return clients;
}

const within = <T>(promise: Promise<T>, ms: number, fallback: T) =>
  Promise.race([promise, new Promise<T>((resolve) => setTimeout(() => resolve(fallback), ms))]);

/** Speak, time the first audio, stop, and wait (bounded) for the end. NaN when no audio came. */
async function firstAudio(c: BenchClient, id: string, text: string): Promise<number> {
  let sentAt = 0;
  const ended = new Promise<void>((resolve) => (c.onEnd = () => resolve()));
  const heard = new Promise<number>((resolve) => {
    c.onAudio = (_n, at) => {
      c.onAudio = () => {};
      resolve(at - sentAt);
      c.stop();
    };
  });
  sentAt = epochMs();
  c.speak(id, text);
  const t = await within(heard, 15_000, Number.NaN);
  await within(ended, 10_000, undefined);
  return t;
}

async function run(s: Scenario): Promise<unknown> {
  switch (s.kind) {
    case 'ttfa': {
      // Every session speaks, takes its first audio, stops and waits for the end; all together,
      // round after round. Round 0 warms connections and code paths and is not counted.
      const clients = await openClients(s.contender, s.port, s.sessions);
      // What the clients receive in these rounds (warm-up included), not in the handshakes before.
      const from = { ...received };
      const ttfa: number[] = [];
      for (let round = 0; round <= s.rounds; round++) {
        const times = await Promise.all(clients.map((c, i) => firstAudio(c, `t${i}-${round}`, `Mark ${s.tag}-${i}-${round}. ${s.text}`)));
        if (round > 0) ttfa.push(...times.filter(Number.isFinite));
        await new Promise((r) => setTimeout(r, 50));
        if (round === 0 && s.holdAfterWarmup) {
          const go = new Promise<void>((resolve) => (onGo = resolve));
          process.send!({ type: 'warm' });
          await go;
        }
      }
      for (const c of clients) c.close();
      return { ttfa, received: { binary: received.binary - from.binary, text: received.text - from.text } };
    }
    case 'stop': {
      const clients = await openClients(s.contender, s.port, s.sessions);
      const stopAt: Record<string, number> = {};
      const stopToEnd: number[] = [];
      await Promise.all(
        clients.map(async (c, i) => {
          const marker = `Mark ${s.tag}-${i}.`;
          const streaming = new Promise<void>((resolve) => (c.onAudio = () => resolve()));
          c.speak(`s${i}`, `${marker} ${s.text}`);
          await within(streaming, 15_000, undefined);
          c.onAudio = () => {};
          await new Promise((r) => setTimeout(r, Math.random() * 500));
          const ended = new Promise<number>((resolve) => (c.onEnd = (_id, _reason, at) => resolve(at)));
          stopAt[marker] = epochMs();
          c.stop();
          const at = await within(ended, 10_000, Number.NaN);
          stopToEnd.push(at - stopAt[marker]!);
        }),
      );
      for (const c of clients) c.close();
      return { stopToEnd, stopAt };
    }
    case 'capacity': {
      const clients = await openClients(s.contender, s.ports ?? s.port, s.sessions);
      let underruns = 0;
      let samples = 0;
      let completed = 0;
      await Promise.all(
        clients.map(
          (c, i) =>
            new Promise<void>((resolve) => {
              // A client with a jitter buffer: playback starts jitterMs after the first audio;
              // a chunk arriving after its playback time is an underrun.
              let playStart = 0;
              let received = 0;
              let underran = false;
              c.onAudio = (n, at) => {
                if (playStart === 0) playStart = at + s.jitterMs;
                else if (at > playStart + (received / sampleRate) * 1000) underran = true;
                received += n;
              };
              c.onEnd = () => {
                samples += received;
                if (underran) underruns++;
                completed++;
                resolve();
              };
              c.speak(`c${i}`, `Mark ${s.tag}-${i}. ${s.text}`);
              setTimeout(resolve, 60_000);
            }),
        ),
      );
      for (const c of clients) c.close();
      return { underruns, completed, audioSeconds: samples / sampleRate };
    }
    case 'frames': {
      const clients = await openClients(s.contender, s.port, s.sessions);
      const later: number[] = [];
      const first: number[] = [];
      const ttfa: number[] = [];
      // The later frames' way in two parts: provider → gateway's engine, and on to the client.
      const toGateway: number[] = [];
      const toClient: number[] = [];
      /** With `raw`: every later frame as [session, arrival epoch ms, provider → gateway ms]. */
      const raw: Array<[number, number, number]> = [];
      // Later frames in a stream's first 500 ms (every session starts at once: the start burst) and after.
      const startBurst: number[] = [];
      const steady: number[] = [];
      let unreadable = 0;
      let completed = 0;
      await Promise.all(
        clients.map(
          (c, i) =>
            new Promise<void>((resolve) => {
              let frames = 0;
              let sentAt = 0;
              let firstAt = 0;
              c.onFrame = (pcm, at) => {
                if (frames === 0) {
                  ttfa.push(at - sentAt);
                  firstAt = at;
                }
                const latency = at - stampOf(pcm);
                // A frame whose first bytes are no stamp of the last minute (a frame cut elsewhere).
                if (!(latency >= 0 && latency < 60_000)) unreadable++;
                else if (frames === 0) first.push(latency);
                else {
                  later.push(latency);
                  (at - firstAt <= 500 ? startBurst : steady).push(latency);
                  const atGateway = gatewayStampOf(pcm);
                  toGateway.push(atGateway - stampOf(pcm));
                  toClient.push(at - atGateway);
                  if (s.raw) raw.push([i, at, atGateway - stampOf(pcm)]);
                }
                frames++;
              };
              c.onEnd = () => {
                completed++;
                resolve();
              };
              sentAt = epochMs();
              c.speak(`f${i}`, `Mark ${s.tag}-${i}. ${s.text}`);
              setTimeout(resolve, 60_000);
            }),
        ),
      );
      for (const c of clients) c.close();
      return { first, later, startBurst, steady, ttfa, toGateway, toClient, unreadable, completed, ...(s.raw ? { raw } : {}) };
    }
    case 'open': {
      held = await openClients(s.contender, s.port, s.sessions);
      if (s.speakText) {
        await Promise.all(
          held.map(
            (c, i) =>
              new Promise<void>((resolve) => {
                c.onAudio = () => resolve();
                c.speak(`o${i}`, `Mark ${s.tag}-${i}. ${s.speakText}`);
                setTimeout(resolve, 15_000);
              }),
          ),
        );
      }
      return { opened: held.length };
    }
    case 'closeAll': {
      for (const c of held) c.close();
      held = [];
      return { closed: true };
    }
    case 'sequence': {
      const clients = await openClients(s.contender, s.port, s.parallel);
      const ttfa: number[] = [];
      let samples = 0;
      let next = 0;
      const started = epochMs();
      await Promise.all(
        clients.map(async (c) => {
          while (next < s.count) {
            const i = next++;
            const sentAt = epochMs();
            let first = 0;
            await within(
              new Promise<void>((resolve) => {
                c.onAudio = (n, at) => {
                  if (first === 0) first = at;
                  samples += n;
                };
                c.onEnd = () => resolve();
                c.speak(`q${i}`, `${s.text} ${i}.`);
              }),
              30_000,
              undefined,
            );
            if (first > 0) ttfa.push(first - sentAt);
          }
        }),
      );
      const wallSeconds = (epochMs() - started) / 1000;
      for (const c of clients) c.close();
      return { ttfa, audioSeconds: samples / sampleRate, wallSeconds };
    }
  }
}

let onGo = () => {};
process.on('message', (message: { id: number; scenario: Scenario } | { type: 'go' }) => {
  if ('type' in message) return onGo();
  run(message.scenario).then(
    (result) => process.send!({ id: message.id, result }),
    (error: Error) => process.send!({ id: message.id, error: error.message }),
  );
});
process.send!({ type: 'ready' });
