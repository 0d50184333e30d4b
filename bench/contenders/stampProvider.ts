// The per-frame latency figure's provider (bench/cluster.ts): real-time blocks of exactly one
// wire frame (40 ms at 24 kHz, the engine's default chunk), each carrying in its first four
// samples the wall clock (epochMs, a float64) at the moment the provider yields it. The
// chunker passes a block of exactly one frame through as one frame, so the client reads the
// stamp back from each frame's first 8 bytes: arrival minus stamp is the time from the
// provider yielding the block to the client holding the frame, whichever way it went (in one
// process, or worker → Redis → gateway). Every process is on one machine, one clock.
import type { PcmBlock, SynthesisRequest, TtsProvider } from '../../src/providers/types.js';
import { epochMs } from '../common.js';

export const stampRate = 24_000;
export const stampFrameMs = 40;
const frameSamples = (stampRate * stampFrameMs) / 1000;

export class StampProvider implements TtsProvider {
  readonly name = 'stamp';
  readonly voices = [{ id: 'stamp', language: 'en', provider: 'stamp' }];
  readonly maxPieceChars = 10_000;

  /** 10 ms of audio per character of text (a 300-character text streams for 3 s). */
  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    const frames = Math.max(1, Math.round((request.text.length * 10) / stampFrameMs));
    const start = performance.now();
    for (let i = 0; i < frames; i++) {
      // Real-time pacing against the start, so a late timer does not drift the stream.
      const due = start + i * stampFrameMs - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
      if (request.signal.aborted) return;
      const samples = new Int16Array(frameSamples);
      for (let s = 8; s < frameSamples; s++) samples[s] = (s * 37) % 2000;
      new DataView(samples.buffer, samples.byteOffset, 8).setFloat64(0, epochMs(), true);
      yield { samples, sampleRate: stampRate };
    }
  }

  ready = () => Promise.resolve();
  isReady = () => true;
  close = () => Promise.resolve();
}

/**
 * The gateway's side: a provider whose blocks get a second stamp (samples 4–7) as the gateway's
 * engine takes them from `provider` (in a cluster, the RedisJobProvider reading the job's
 * stream), so a frame's way splits into provider → gateway and gateway → client.
 */
export function restamped(provider: TtsProvider): TtsProvider {
  return {
    name: provider.name,
    voices: provider.voices,
    maxPieceChars: provider.maxPieceChars,
    async *synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
      for await (const block of provider.synthesize(request)) {
        if (block.samples.length >= 8) new DataView(block.samples.buffer, block.samples.byteOffset + 8, 8).setFloat64(0, epochMs(), true);
        yield block;
      }
    },
    ready: () => provider.ready(),
    isReady: () => provider.isReady(),
    close: () => provider.close(),
  };
}

/** The provider's stamp in a frame's PCM payload (the bytes after the 8-byte header). */
export const stampOf = (payload: Buffer): number => (payload.length >= 8 ? payload.readDoubleLE(0) : Number.NaN);
/** The gateway's stamp (restamped), or NaN. */
export const gatewayStampOf = (payload: Buffer): number => (payload.length >= 16 ? payload.readDoubleLE(8) : Number.NaN);
