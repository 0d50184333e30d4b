// The browser side of the wire contract: connects to /v1/voice, authenticates in
// session.start (never in the URL), speak() / stop(), a typed event for every server
// message, and reconnection with capped exponential backoff and jitter.
import type { EndReason, ServerMessage, SessionPhase, VoiceInfo, WireError } from '../../machines/types.js';

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
}

export interface SpeakOptions {
  id?: string;
  voice?: string;
  mode?: 'interrupt' | 'enqueue';
  final?: boolean;
}

export interface VoiceClientEvents {
  state: { state: ConnectionState; attempt: number };
  ready: { sessionId: string; sampleRate: number; voices: VoiceInfo[] };
  accepted: { id: string; stream: number };
  audio: { stream: number; seq: number; pcm: Int16Array };
  end: { id: string; stream: number; reason: EndReason; error?: WireError; stats: unknown };
  error: { code: string; message: string; id?: string };
  session: { state: SessionPhase; path: string };
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
        }),
      );
    };
    ws.onmessage = (event) => this.onFrame(event.data as ArrayBuffer | string);
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
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
        this.setState('ready');
        this.emit('ready', { sessionId: message.sessionId, sampleRate: message.format.sampleRate, voices: message.voices });
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
