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
      for (let s = 4; s < frameSamples; s++) samples[s] = (s * 37) % 2000;
      new Float64Array(samples.buffer, 0, 1)[0] = epochMs();
      yield { samples, sampleRate: stampRate };
    }
  }

  ready = () => Promise.resolve();
  isReady = () => true;
  close = () => Promise.resolve();
}

/** The stamp in a frame's PCM payload (the bytes after the 8-byte header). */
export const stampOf = (payload: Buffer): number => (payload.length >= 8 ? payload.readDoubleLE(0) : Number.NaN);
