// A provider for memory tests (does its consumer let go of a block while it waits for the next?).
import type { PcmBlock, SynthesisRequest, TtsProvider } from '../../src/providers/types.js';

/**
 * One block, then a wait (until aborted) for a second that never comes. A plain iterator, not a
 * generator, so that nothing here keeps the block: the first block is known only through a WeakRef.
 */
export class OneBlockProvider implements TtsProvider {
  readonly name = 'one-block';
  readonly voices = [{ id: 'v', language: 'en', provider: 'one-block' }];
  readonly maxPieceChars = 200;
  first: WeakRef<Int16Array> | null = null;
  /** Its consumer asked for the block after the first. */
  waiting = false;
  openTextStream?: TtsProvider['openTextStream'];

  /** With `textStream`, it offers one text stream per utterance (as ElevenLabs does) instead of a request per piece. */
  constructor(textStream = false) {
    if (textStream) {
      this.openTextStream = ({ signal }) => ({ write() {}, flush() {}, end() {}, close() {}, audio: this.blocks(signal) });
    }
  }

  synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    return this.blocks(request.signal);
  }

  private blocks(signal: AbortSignal): AsyncIterableIterator<PcmBlock> {
    let handedOut = 0;
    const over = { done: true as const, value: undefined };
    return {
      next: async () => {
        if (handedOut++ === 0) {
          const samples = new Int16Array(4_800).fill(1);
          this.first = new WeakRef(samples);
          return { done: false, value: { samples, sampleRate: 24_000 } };
        }
        this.waiting = true;
        await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
        return over;
      },
      return: async () => over,
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  ready = () => Promise.resolve();
  isReady = () => true;
  close = () => Promise.resolve();
}
