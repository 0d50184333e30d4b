// `tsx bench/chunkCost.ts [chunks]`: what one audio chunk costs inside the session actor,
// as a ratio to handing the same chunk straight to the transport (the floor). Pure CPU, one
// process, no sockets: it isolates the machine's per-chunk work from everything else.
import { createActor, fromCallback } from 'xstate';
import { connectionMachine } from '../machines/connection.machine.js';
import { speakerMachine } from '../machines/speaker.machine.js';
import { defaultSessionLimits, type UpstreamCommand, type UpstreamEvent, type UpstreamInput } from '../machines/types.js';
import { voiceIdsOf } from '../src/engine/sessionSettings.js';
import { percentile } from './common.js';

const chunks = Number(process.argv[2] ?? 200_000);
const pcm = new Int16Array(960);
let sent = 0;
const sink = (_stream: number, _seq: number, p: Int16Array) => {
  sent += p.length;
};

function floor(): number {
  const t0 = performance.now();
  for (let i = 0; i < chunks; i++) sink(1, i, pcm);
  return performance.now() - t0;
}

function throughMachine(): number {
  let upstream: ((e: UpstreamEvent) => void) | undefined;
  const speaker = speakerMachine.provide({
    actions: { sendAudio: (_, a) => sink(a.stream, a.seq, a.pcm) },
    actors: {
      upstream: fromCallback<UpstreamCommand, UpstreamInput>(({ sendBack }) => {
        upstream = sendBack as (e: UpstreamEvent) => void;
        return () => {};
      }),
    },
  });
  const machine = connectionMachine.provide({ actors: { speaker } });
  const voices = [{ id: 'v', language: 'en', provider: 'p' }];
  const actor = createActor(machine, { input: { sessionId: 's', voices, voiceIds: voiceIdsOf(voices), defaultVoice: 'v', sampleRates: [24_000], limits: defaultSessionLimits } });
  actor.start();
  actor.send({ type: 'START', sampleRate: 24_000 });
  actor.send({ type: 'SPEAK', request: { id: 'u', text: 'x', mode: 'enqueue', final: true } });
  const t0 = performance.now();
  for (let i = 0; i < chunks; i++) upstream!({ type: 'UPSTREAM_AUDIO', stream: 1, pcm });
  const t = performance.now() - t0;
  actor.stop();
  return t;
}

// Warm both paths, then take the median of five runs each.
floor();
throughMachine();
const f = percentile(Array.from({ length: 5 }, floor), 50);
const m = percentile(Array.from({ length: 5 }, throughMachine), 50);
const perChunkUs = ((m - f) / chunks) * 1000;
process.stdout.write(
  JSON.stringify({ chunks, floorMs: +f.toFixed(1), machineMs: +m.toFixed(1), perChunkUs: +perChunkUs.toFixed(2), sent: sent > 0 }) + '\n',
);
