// `tsx bench/blockCost.ts [blocks]`: what one upstream audio block costs on its whole way through
// voxline (provider iterator → utterance job → session actor → transport), as a ratio to a
// relay's way (provider iterator → socket write: the floor). Pure CPU, one process, no sockets:
// it isolates the engine's per-block work (async hops, framing, the machine's event, the
// wire header) from the network and the upstream, which cost every contender the same.
import { VoiceEngine, type SessionTransport } from '../src/engine/voiceEngine.js';
import type { PcmBlock, TtsProvider } from '../src/providers/types.js';
import { percentile } from './common.js';

const blocks = Number(process.argv[2] ?? 50_000);
const block: PcmBlock = { samples: new Int16Array(480), sampleRate: 24_000 }; // 20 ms, as the emulator sends
let written = 0;

async function* upstream(signal?: AbortSignal): AsyncGenerator<PcmBlock> {
  for (let i = 0; i < blocks && !signal?.aborted; i++) yield block;
}

/** The floor: what a bare relay does per block. */
async function floor(): Promise<number> {
  const t0 = performance.now();
  for await (const b of upstream()) written += Buffer.from(b.samples.buffer, b.samples.byteOffset, b.samples.byteLength).length;
  return performance.now() - t0;
}

const provider: TtsProvider = {
  name: 'blocks',
  voices: [{ id: 'v', language: 'en', provider: 'blocks' }],
  maxPieceChars: 200,
  synthesize: ({ signal }) => upstream(signal),
  ready: () => Promise.resolve(),
  isReady: () => true,
  close: () => Promise.resolve(),
};
const engine = new VoiceEngine({ providers: [provider] });

/** One utterance of `blocks` blocks through a session, from SPEAK to its speak.end. */
function throughEngine(): Promise<number> {
  return new Promise((resolve) => {
    let t0 = 0;
    const transport: SessionTransport = {
      send: (m) => {
        if (m.type === 'speak.end') resolve(performance.now() - t0);
      },
      sendAudio: (_stream, _seq, pcm) => {
        written += pcm.length;
      },
      close: () => {},
      bufferedBytes: () => 0,
      isOpen: () => true,
    };
    const session = engine.startSession(transport);
    session.send({ type: 'START', sampleRate: 24_000 });
    t0 = performance.now();
    session.send({ type: 'SPEAK', request: { id: `u${Math.random()}`, text: 'One long sentence that is spoken as one piece.', final: true, mode: 'enqueue' } });
  });
}

// Warm both paths, then take the median of five runs each.
await floor();
await throughEngine();
const f: number[] = [];
const e: number[] = [];
for (let i = 0; i < 5; i++) {
  f.push(await floor());
  e.push(await throughEngine());
}
const floorMs = percentile(f, 50);
const engineMs = percentile(e, 50);
process.stdout.write(
  JSON.stringify({ blocks, floorMs: +floorMs.toFixed(1), engineMs: +engineMs.toFixed(1), ratio: +(engineMs / floorMs).toFixed(1), perBlockUs: +(((engineMs - floorMs) / blocks) * 1000).toFixed(2), written: written > 0 }) + '\n',
);
await engine.shutdown();
