// A deterministic, paced TTS stand-in: the same text always gives the same samples (eSpeak's
// successive calls differ by a few samples), so "sample-identical to an undisturbed run" can be
// checked literally, and its pacing makes "mid-utterance" a moment a test can hit.
import type { PcmBlock, SynthesisRequest, TtsProvider } from '../../src/providers/types.js';

export interface ToneProviderOptions {
  /** Audio per character of text (default 20 ms: a 100-character text is 2 s of audio). */
  msPerChar?: number;
  /** Audio per yielded block (default 100 ms). */
  blockMs?: number;
  /** Wall time between blocks (default 20 ms: five times faster than real time). */
  pauseMs?: number;
  sampleRate?: number;
}

export class ToneProvider implements TtsProvider {
  readonly name = 'tone';
  readonly voices = [{ id: 'tone', language: 'en', provider: 'tone' }];
  readonly maxPieceChars = 10_000;
  private readonly msPerChar: number;
  private readonly blockMs: number;
  private readonly pauseMs: number;
  private readonly rate: number;

  constructor(options: ToneProviderOptions = {}) {
    this.msPerChar = options.msPerChar ?? 20;
    this.blockMs = options.blockMs ?? 100;
    this.pauseMs = options.pauseMs ?? 20;
    this.rate = options.sampleRate ?? 24_000;
  }

  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    const total = Math.round((request.text.length * this.msPerChar * this.rate) / 1000);
    const block = Math.round((this.blockMs * this.rate) / 1000);
    // The text picks the pitch; the sample index the phase: deterministic, and not silence.
    let hash = 0;
    for (const ch of request.text) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
    const period = 40 + (hash % 60);
    for (let at = 0; at < total; at += block) {
      if (at > 0) await pause(this.pauseMs, request.signal);
      if (request.signal.aborted) return;
      const samples = new Int16Array(Math.min(block, total - at));
      for (let i = 0; i < samples.length; i++) samples[i] = Math.round(8000 * Math.sin((2 * Math.PI * (at + i)) / period));
      yield { samples, sampleRate: this.rate };
    }
  }

  ready = () => Promise.resolve();
  isReady = () => true;
  close = () => Promise.resolve();
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
