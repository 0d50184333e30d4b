// The browser side of the wire contract: connects to /v1/voice, authenticates in
// session.start (never in the URL), speak() / stop(), a typed event for every server
// message, and reconnection with capped exponential backoff and jitter. Version 2: asks to
// listen and for the agent turn, sends microphone frames, input.commit and playback reports.
import type { AgentSettings, EndReason, ListenFormat, ServerMessage, SessionPhase, TurnStatus, VoiceInfo, WireError } from '../../machines/types.js';

/** What `listen` asks for in session.start (wire contract v2); the format defaults to 16 kHz PCM. */
export interface ListenRequestOptions {
  format?: ListenFormat;
  language?: string;
  /** What the user is likely to say: a recognizer with a grammar hears exactly these. */
  phrases?: string[];
  /** Barge-in: the user speaking over a reply ends it (default true on the server). */
  interruptions?: boolean;
}

export type ConnectionState = 'connecting' | 'ready' | 'reconnecting' | 'closed';

export interface VoiceClientOptions {
  /** ws:// or wss:// URL of the voice endpoint (default: /v1/voice on the page's host). */
  url?: string;
  /** API key, sent only inside session.start. */
  token?: string;
  sampleRate?: number;
  voice?: string;
  /** Ask the server for `session.state` messages (the statechart's state). */
  observe?: boolean;
  /** Reconnect backoff: first delay, cap, and the random share added (default 250 ms, 8 s, 0.3). */
  reconnect?: { initialMs?: number; maxMs?: number; jitter?: number } | false;
  /** Ask the server to hear the microphone (sent with every session.start, also on reconnect). */
  listen?: ListenRequestOptions;
  /** Ask the server to answer each user turn (needs `listen`): `{ instructions?, voice? }`. */
  agent?: AgentSettings;
  /**
   * Microphone audio queued in the socket beyond this many bytes is dropped rather than sent
   * late (default 32 000: one second of 16 kHz PCM). Live audio is worthless once stale.
   */
  maxQueuedAudioBytes?: number;
}

export interface SpeakOptions {
  id?: string;
  voice?: string;
  mode?: 'interrupt' | 'enqueue';
  final?: boolean;
}

export interface VoiceClientEvents {
  state: { state: ConnectionState; attempt: number };
  /** `listen`: the microphone format the server takes, absent when it does not listen. */
  ready: { sessionId: string; sampleRate: number; voices: VoiceInfo[]; listen?: { format: ListenFormat } };
  accepted: { id: string; stream: number };
  audio: { stream: number; seq: number; pcm: Int16Array };
  end: { id: string; stream: number; reason: EndReason; error?: WireError; stats: unknown };
  error: { code: string; message: string; id?: string };
  session: { state: SessionPhase; path: string };
  // Listening: positions are ms of microphone audio the server received (its media clock).
  speechStarted: { turn: string; audioMs: number };
  speechStopped: { turn: string; audioMs: number };
  transcript: { turn: string; text: string; final: boolean };
  // The agent turn: the reply's text as it is written, and each turn's one end.
  replyText: { turn: string; text: string };
  /** `heard`: the part of the reply the user heard (all of it when completed). */
  turnEnd: { turn: string; status: TurnStatus; heard: string; error?: WireError };
}

type Listener<K extends keyof VoiceClientEvents> = (event: VoiceClientEvents[K]) => void;

export class VoiceClient {
  private ws: WebSocket | null = null;
  private readonly listeners = new Map<keyof VoiceClientEvents, Set<Listener<never>>>();
  private readonly options: VoiceClientOptions;
  private attempt = 0;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private closedByUser = false;
  private nextId = 1;
  state: ConnectionState = 'closed';
  sampleRate: number;
  voices: VoiceInfo[] = [];
  /** The microphone format of this session, null while the server does not listen. */
  listenFormat: ListenFormat | null = null;
  /** Microphone frames dropped because the socket was not open or too far behind. */
  droppedAudioFrames = 0;

  constructor(options: VoiceClientOptions = {}) {
    this.options = options;
    this.sampleRate = options.sampleRate ?? 24_000;
  }

  on<K extends keyof VoiceClientEvents>(type: K, listener: Listener<K>): () => void {
    const set = this.listeners.get(type) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(type, set);
    return () => set.delete(listener as Listener<never>);
  }

  connect(): void {
    this.closedByUser = false;
    this.open();
  }

  /** Send text; returns the utterance id. */
  speak(text: string, options: SpeakOptions = {}): string {
    const id = options.id ?? `u${Date.now().toString(36)}-${this.nextId++}`;
    this.send({
      type: 'speak',
      id,
      text,
      ...(options.voice ? { voice: options.voice } : {}),
      ...(options.mode ? { mode: options.mode } : {}),
      ...(options.final === false ? { final: false } : {}),
    });
    return id;
  }

  stop(id?: string): void {
    this.send(id === undefined ? { type: 'stop' } : { type: 'stop', id });
  }

  /**
   * One microphone frame (raw PCM in the session's listen format). Dropped, and counted, when
   * the session is not ready or does not listen, or when the socket already holds more than
   * `maxQueuedAudioBytes`: the socket is the only buffer and it stays bounded.
   */
  sendAudio(pcm: Int16Array): boolean {
    const ws = this.ws;
    const cap = this.options.maxQueuedAudioBytes ?? 32_000;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.state !== 'ready' || !this.listenFormat || ws.bufferedAmount > cap) {
      this.droppedAudioFrames++;
      return false;
    }
    ws.send(pcm);
    return true;
  }

  /** End the user's current speech now (push to talk). */
  commit(): void {
    this.send({ type: 'input.commit' });
  }

  /** Tell the server how much of a stream has actually played (what the user heard). */
  reportPlayback(stream: number, playedMs: number): void {
    this.send({ type: 'playback', stream, playedMs: Math.max(0, Math.round(playedMs)) });
  }

  /** Close for good (no reconnect). */
  close(): void {
    this.closedByUser = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.ws?.close(1000);
    this.setState('closed');
  }

  private send(message: unknown): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== 'ready') return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  private open(): void {
    const url = this.options.url ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/voice`;
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      ws.send(
        JSON.stringify({
          type: 'session.start',
          ...(this.options.token ? { token: this.options.token } : {}),
          ...(this.options.voice ? { voice: this.options.voice } : {}),
          ...(this.options.observe ? { observe: true } : {}),
          format: { encoding: 'pcm_s16le', sampleRate: this.sampleRate },
          ...(this.options.listen ? { listen: { format: { encoding: 'pcm_s16le', sampleRate: 16_000 }, ...this.options.listen } } : {}),
          ...(this.options.agent ? { agent: this.options.agent } : {}),
        }),
      );
    };
    ws.onmessage = (event) => this.onFrame(event.data as ArrayBuffer | string);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.listenFormat = null;
      if (this.closedByUser || this.options.reconnect === false) {
        this.setState('closed');
        return;
      }
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    const r = this.options.reconnect || {};
    const base = Math.min(r.maxMs ?? 8_000, (r.initialMs ?? 250) * 2 ** this.attempt);
    const delay = base * (1 + Math.random() * (r.jitter ?? 0.3));
    this.attempt++;
    this.setState('reconnecting');
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.closedByUser) this.open();
    }, delay);
  }

  private onFrame(data: ArrayBuffer | string): void {
    if (typeof data !== 'string') {
      const view = new DataView(data);
      if (data.byteLength < 8) return;
      const stream = view.getUint32(0, true);
      const seq = view.getUint32(4, true);
      // Copy: the PCM must be 2-byte aligned for Int16Array.
      const pcm = new Int16Array(data.slice(8, 8 + ((data.byteLength - 8) & ~1)));
      this.emit('audio', { stream, seq, pcm });
      return;
    }
    let message: ServerMessage;
    try {
      message = JSON.parse(data) as ServerMessage;
    } catch {
      return;
    }
    switch (message.type) {
      case 'session.ready':
        this.attempt = 0;
        this.sampleRate = message.format.sampleRate;
        this.voices = message.voices;
        this.listenFormat = message.listen?.format ?? null;
        this.setState('ready');
        this.emit('ready', {
          sessionId: message.sessionId,
          sampleRate: message.format.sampleRate,
          voices: message.voices,
          ...(message.listen ? { listen: message.listen } : {}),
        });
        return;
      case 'speak.accepted':
        this.emit('accepted', { id: message.id, stream: message.stream });
        return;
      case 'speak.end':
        this.emit('end', {
          id: message.id,
          stream: message.stream,
          reason: message.reason,
          ...(message.error ? { error: message.error } : {}),
          stats: message.stats,
        });
        return;
      case 'error':
        this.emit('error', { code: message.code, message: message.message, ...(message.id !== undefined ? { id: message.id } : {}) });
        return;
      case 'session.state':
        this.emit('session', { state: message.state, path: message.path });
        return;
      case 'input.speech_started':
        this.emit('speechStarted', { turn: message.turn, audioMs: message.audioMs });
        return;
      case 'input.speech_stopped':
        this.emit('speechStopped', { turn: message.turn, audioMs: message.audioMs });
        return;
      case 'transcript':
        this.emit('transcript', { turn: message.turn, text: message.text, final: message.final });
        return;
      case 'reply.text':
        this.emit('replyText', { turn: message.turn, text: message.text });
        return;
      case 'turn.end':
        this.emit('turnEnd', { turn: message.turn, status: message.status, heard: message.heard, ...(message.error ? { error: message.error } : {}) });
        return;
      default:
        return;
    }
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state, attempt: this.attempt });
  }

  private emit<K extends keyof VoiceClientEvents>(type: K, event: VoiceClientEvents[K]): void {
    for (const l of this.listeners.get(type) ?? []) (l as Listener<K>)(event);
  }
}
