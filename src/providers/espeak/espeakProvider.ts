// The embedded offline voice: eSpeak NG running in a pool of child processes.
import type { VoiceInfo } from '../../../machines/types.js';
import type { PcmBlock, SynthesisRequest, TtsProvider } from '../types.js';
import { EspeakWorkerPool, type WorkerPoolOptions } from './workerPool.js';

export const espeakVoices: VoiceInfo[] = [
  { id: 'en-us', language: 'en', provider: 'espeak' },
  { id: 'en-gb', language: 'en', provider: 'espeak' },
  { id: 'ar', language: 'ar', provider: 'espeak' },
];

/**
 * eSpeak's own name for each advertised voice. eSpeak selects by voice file name, and its
 * British English ("English (Great Britain)", language tag en-gb) is the file `en`; there is
 * no voice named `en-gb`, so that id would fail every time.
 */
export const espeakVoiceNames: ReadonlyMap<string, string> = new Map([
  ['en-us', 'en-us'],
  ['en-gb', 'en'],
  ['ar', 'ar'],
]);

export class EspeakProvider implements TtsProvider {
  readonly name = 'espeak';
  readonly voices = espeakVoices;
  // Pieces stay short so a stopped utterance frees its worker within tens of milliseconds.
  readonly maxPieceChars = 300;
  readonly pool: EspeakWorkerPool;

  constructor(options: Partial<WorkerPoolOptions> = {}) {
    this.pool = new EspeakWorkerPool(options);
  }

  ready(): Promise<void> {
    return this.pool.start();
  }

  isReady(): boolean {
    return this.pool.isReady();
  }

  synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    const voice = espeakVoiceNames.get(request.voice) ?? request.voice;
    return this.pool.synthesize(request.text, voice, request.signal, request);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  poolStats() {
    return this.pool.stats();
  }
}

export function espeakProvider(options: Partial<WorkerPoolOptions> = {}): EspeakProvider {
  return new EspeakProvider(options);
}
