// ElevenLabs through its multi-context WebSocket (`multi-stream-input`): one context per
// utterance, text streamed in as the client sends it. Connections are pooled per voice
// (the voice is part of the URL) with at most 4 contexts each; the service closes a
// socket that opens a 5th. STOP is local: the utterance ends at once, `close_context`
// goes upstream after, and audio arriving later for that context is dropped.
// At the end of an utterance `close_context` waits for the context's first audio: under
// load the service honours a close that overtakes its text and answers isFinal with no
// audio at all (what Pipecat saw in production, pipecat-ai/pipecat#4681, #5271).
import type { VoiceInfo } from '../../../machines/types.js';
import { BlockQueue } from '../blockQueue.js';
import { nextItem } from '../iteration.js';
import { ProviderError, type PcmBlock, type SynthesisRequest, type TextStream, type TtsProvider } from '../types.js';
import { ElevenLabsConnection, type ContextSink } from './elevenLabsConnection.js';

export interface ElevenLabsVoice {
  /** The name clients use (`rachel`, or `elevenlabs:rachel`). */
  id: string;
  /** ElevenLabs' voice id. */
  voiceId: string;
  language?: string;
}

/** A few of ElevenLabs' premade voices; configure others with `voices`. */
export const elevenLabsDefaultVoices: ElevenLabsVoice[] = [
  { id: 'rachel', voiceId: '21m00Tcm4TlvDq8ikWAM', language: 'en' },
  { id: 'sarah', voiceId: 'EXAVITQu4vr4xnSDxMaL', language: 'en' },
  { id: 'george', voiceId: 'JBFqnCBsd6RMkjVDRZzb', language: 'en' },
  { id: 'adam', voiceId: 'pNInz6obpgDQGcFmaJgB', language: 'en' },
];

export interface ElevenLabsProviderOptions {
  apiKey: string;
  /** Default wss://api.elevenlabs.io; tests point it at the emulator. */
  baseURL?: string;
  modelId?: string;
  voices?: ElevenLabsVoice[];
  /** PCM rate asked of the service: 16000, 22050, 24000 (default) or 44100. */
  sampleRate?: 16_000 | 22_050 | 24_000 | 44_100;
  /** Contexts per connection, live or awaiting the service's confirmation (default and maximum 4). */
  maxContextsPerConnection?: number;
  /** Connections across all voices (default 32); beyond it an utterance fails with `provider_busy`. */
  maxConnections?: number;
  /** The service's inactivity timeout we ask for, in seconds (default 180, its maximum). */
  inactivityTimeoutS?: number;
  /**
   * An idle connection is closed by us this long before the service's inactivity timeout
   * would close it, counted from the last text message sent (default 10 s; at least 1 s after it).
   */
  idleMarginMs?: number;
  /**
   * The longest `close_context` waits for the context's first audio (default 5 s). After it
   * the close goes anyway, so a service that never speaks still ends the context.
   */
  closeDeferMs?: number;
  connectTimeoutMs?: number;
  closeGraceMs?: number;
  /** Largest message accepted from the service (default 4 MiB); larger closes the socket. */
  maxPayloadBytes?: number;
  pingIntervalMs?: number;
}

export function elevenLabsProvider(options: ElevenLabsProviderOptions): TtsProvider & { connectionCount(): number } {
  const voiceList = options.voices ?? elevenLabsDefaultVoices;
  const voiceIds = new Map(voiceList.map((v) => [v.id, v.voiceId]));
  const sampleRate = options.sampleRate ?? 24_000;
  const perConnection = Math.min(4, Math.max(1, options.maxContextsPerConnection ?? 4));
  const maxConnections = options.maxConnections ?? 32;
  const inactivityS = Math.min(180, Math.max(5, options.inactivityTimeoutS ?? 180));
  const baseURL = (options.baseURL ?? 'wss://api.elevenlabs.io').replace(/\/+$/, '');
  const modelId = options.modelId ?? 'eleven_flash_v2_5';
  const closeDeferMs = options.closeDeferMs ?? 5_000;
  const pools = new Map<string, ElevenLabsConnection[]>();
  let closed = false;

  const connectionCount = () => [...pools.values()].reduce((n, list) => n + list.length, 0);

  function acquire(voiceId: string): ElevenLabsConnection {
    const list = pools.get(voiceId) ?? [];
    const usable = list.find((c) => c.accepts(perConnection));
    if (usable) return usable;
    if (closed) throw new ProviderError('provider_unavailable', 'the elevenlabs provider is closed');
    if (connectionCount() >= maxConnections) throw new ProviderError('provider_busy', 'every elevenlabs connection is at its context limit');
    const query = new URLSearchParams({ model_id: modelId, output_format: `pcm_${sampleRate}`, inactivity_timeout: String(inactivityS) });
    const connection = new ElevenLabsConnection(
      {
        url: `${baseURL}/v1/text-to-speech/${encodeURIComponent(voiceId)}/multi-stream-input?${query}`,
        apiKey: options.apiKey,
        connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
        // Leave well before the service would close an idle socket on its own.
        idleCloseMs: Math.max(1_000, inactivityS * 1000 - (options.idleMarginMs ?? 10_000)),
        closeGraceMs: options.closeGraceMs ?? 3_000,
        maxPayloadBytes: options.maxPayloadBytes ?? 4 * 1024 * 1024,
        pingIntervalMs: options.pingIntervalMs ?? 15_000,
      },
      (gone) => {
        const current = pools.get(voiceId);
        if (!current) return;
        const rest = current.filter((c) => c !== gone);
        if (rest.length > 0) pools.set(voiceId, rest);
        else pools.delete(voiceId);
      },
    );
    pools.set(voiceId, [...list, connection]);
    return connection;
  }

  function openTextStream({ voice, signal }: Omit<SynthesisRequest, 'text'>): TextStream {
    const voiceId = voiceIds.get(voice);
    if (!voiceId) return failedStream(new ProviderError('provider_unavailable', `elevenlabs has no voice "${voice}"`));
    let connection: ElevenLabsConnection;
    try {
      connection = acquire(voiceId);
    } catch (error) {
      return failedStream(error as ProviderError);
    }
    return new ElevenLabsContext(connection, sampleRate, signal, closeDeferMs);
  }

  return {
    name: 'elevenlabs',
    voices: voiceList.map<VoiceInfo>((v) => ({ id: v.id, language: v.language ?? 'en', provider: 'elevenlabs' })),
    // Text goes in as whole sentences; the service does its own chunking.
    maxPieceChars: 1_000,
    openTextStream,
    async *synthesize(request: SynthesisRequest): AsyncGenerator<PcmBlock> {
      const stream = openTextStream(request);
      const audio = stream.audio[Symbol.asyncIterator]();
      try {
        stream.write(request.text);
        stream.end();
        // Not `yield*`: see ../iteration.ts.
        let block = await nextItem(audio);
        while (block) {
          yield block;
          block = null;
          block = await nextItem(audio);
        }
      } finally {
        stream.close();
        await audio.return?.();
      }
    },
    ready: () => Promise.resolve(),
    isReady: () => true,
    connectionCount,
    async close() {
      closed = true;
      for (const list of [...pools.values()]) for (const c of list) c.close();
      pools.clear();
    },
  };
}

let nextContext = 0;

/** Text the service should make audio for (not only spaces and punctuation). */
const speakable = /[\p{L}\p{N}]/u;

/** One utterance's context on a connection. */
class ElevenLabsContext implements TextStream, ContextSink {
  readonly id = `vx${(nextContext++).toString(36)}`;
  private readonly outbox: Record<string, unknown>[] = [];
  /** Audio of this context; finished once the service let go of it (isFinal or a failure). */
  private readonly queue = new BlockQueue<PcmBlock>();
  private initialised = false;
  private closeSent = false;
  private ended = false;
  private released = false;
  /** Some written text should make audio. */
  private speaks = false;
  /** The service sent audio for this context (even a single byte). */
  private heard = false;
  /** The end's `close_context`, held until the first audio or `closeDeferMs`. */
  private closeDeferTimer: NodeJS.Timeout | null = null;
  private readonly onAbort = () => this.close();

  constructor(
    private readonly connection: ElevenLabsConnection,
    private readonly sampleRate: number,
    private readonly signal: AbortSignal,
    private readonly closeDeferMs: number,
  ) {
    connection.register(this);
    signal.addEventListener('abort', this.onAbort, { once: true });
    connection.opened.then(
      () => {
        if (this.released || this.queue.finished) return;
        // A context starts with a single space; only then may it be flushed or closed.
        this.initialised = this.connection.send({ text: ' ', context_id: this.id });
        for (const message of this.outbox.splice(0)) this.post(message);
      },
      () => {}, // the connection reports its failure through onFail
    );
  }

  write(text: string): void {
    if (text.length === 0) return;
    if (speakable.test(text)) this.speaks = true;
    // The service expects each text message to end with a space.
    this.post({ text: text.endsWith(' ') ? text : `${text} `, context_id: this.id });
  }

  flush(): void {
    this.post({ context_id: this.id, flush: true });
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.post({ context_id: this.id, flush: true });
    // Sent with its text, the close may overtake it: wait until the service is speaking.
    if (this.heard || !this.speaks) this.sendClose();
    else this.closeDeferTimer = setTimeout(() => this.sendClose(), this.closeDeferMs);
  }

  private sendClose(): void {
    this.cancelDeferredClose();
    if (!this.closeSent) this.post({ context_id: this.id, close_context: true });
  }

  private cancelDeferredClose(): void {
    if (this.closeDeferTimer) clearTimeout(this.closeDeferTimer);
    this.closeDeferTimer = null;
  }

  get audio(): AsyncIterable<PcmBlock> {
    // The queue's own generator, unwrapped: a generator looping over it would keep the last block
    // in its suspended frame while it waits for the next.
    return this.queue.drain(() => this.signal.aborted || this.released);
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    this.cancelDeferredClose();
    this.signal.removeEventListener('abort', this.onAbort);
    this.queue.clear();
    this.queue.wake();
    if (this.queue.finished) {
      // The service already let go of it (isFinal, its error, the connection's end); the
      // connection forgot it then, and forgetting again is harmless.
      this.connection.unregister(this.id);
      return;
    }
    if (!this.initialised) {
      // Nothing reached the service for this context: never flush or close it there.
      this.connection.unregister(this.id);
      return;
    }
    if (!this.closeSent) this.closeSent = this.connection.send({ context_id: this.id, close_context: true });
    this.connection.retire(this.id);
  }

  onAudio(pcm: Int16Array): void {
    this.heard = true;
    if (this.ended && !this.closeSent && !this.released) this.sendClose();
    if (this.released || pcm.length === 0) return;
    this.queue.push({ samples: pcm, sampleRate: this.sampleRate });
  }

  onFinal(): void {
    this.cancelDeferredClose();
    if (!this.ended) this.queue.finish(new ProviderError('provider_unavailable', 'elevenlabs ended the context before its text was complete'));
    // `completed` means the text was spoken; the service dropped it (under load, or out of quota).
    else if (this.speaks && !this.heard) this.queue.finish(new ProviderError('provider_unavailable', 'elevenlabs ended the context without audio for its text'));
    else this.queue.finish(null);
  }

  onFail(error: ProviderError): void {
    this.cancelDeferredClose();
    this.queue.finish(error);
  }

  private post(message: Record<string, unknown>): void {
    if (this.released || this.queue.finished) return;
    if (!this.initialised) {
      this.outbox.push(message);
      return;
    }
    if (message.close_context === true) this.closeSent = true;
    this.connection.send(message);
  }
}

function failedStream(error: ProviderError): TextStream {
  return {
    write() {},
    flush() {},
    end() {},
    close() {},
    audio: {
      // eslint-disable-next-line require-yield
      async *[Symbol.asyncIterator]() {
        throw error;
      },
    },
  };
}
