// The voice engine: turns each WebSocket connection into a session actor and wires the
// actor's actions to the socket. It owns the providers and the set of live sessions.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createActor, fromCallback, type ActorRefFrom, type InspectionEvent } from 'xstate';
import type { WebSocket } from 'ws';
import { sessionMachine } from '../../machines/session.machine.js';
import { sessionPhase } from '../../machines/sessionPhase.js';
import { defaultSessionLimits, type EndRecord, type ServerMessage, type SessionLimits, type VoiceInfo, type WireError } from '../../machines/types.js';
import { encodeAudioFrame } from '../protocol/audioFrame.js';
import { parseClientMessage, ProtocolError } from '../protocol/clientMessages.js';
import { ProviderGuard, type CircuitStateName, type ProviderGuardOptions } from '../providers/providerGuard.js';
import type { TtsProvider } from '../providers/types.js';
import { createSynthesisLogic, type VoiceRoute } from './synthesisActor.js';
import { Admission, type AdmissionPolicy, type ConnectionLimiter, type Lease } from './admission.js';

export interface VoiceEngineOptions {
  /** Upstream TTS providers; the first one's first voice is the default unless `defaultVoice` says otherwise. */
  providers: TtsProvider[];
  defaultVoice?: string;
  /** Sample rates sessions may ask for; the first is the default (24 000 Hz). */
  sampleRates?: number[];
  limits?: Partial<SessionLimits>;
  /** Audio frame duration on the wire, 20–100 ms. */
  chunkMs?: number;
  /** Pause the provider when the socket holds more than this many unsent bytes… */
  highWaterBytes?: number;
  /** …and resume once it is back under this. */
  lowWaterBytes?: number;
  /** WebSocket ping interval; a peer that missed one full interval is disconnected. */
  heartbeatIntervalMs?: number;
  /** Optional API keys; when set, session.start must carry one as `token`. */
  apiKeys?: string[];
  /** Circuit breaker of each provider (consecutive failures, open time). */
  circuitBreaker?: Omit<ProviderGuardOptions, 'onStateChange'>;
  /** Live inspection of every session (redacted); off unless given. */
  inspector?: SessionObserver;
  /** Per-connection and per-key limits against floods and runaway clients. */
  abuse?: Partial<AbuseLimits>;
  /** Concurrent connections (WebSockets and speech requests) per client IP (default 256). */
  maxConnectionsPerIp?: number;
  /** Browser origins allowed to open sessions on any transport; others get 403. Clients that send no Origin (servers, CLIs) are not affected. */
  allowedOrigins?: string[];
}

/** The per-client limits of the admission policy (./admission.ts has their meaning and defaults). */
export type AbuseLimits = Pick<AdmissionPolicy, 'messagesPerSecond' | 'messageBurst' | 'maxRejectedInARow' | 'textCharsPerMinute' | 'maxSessionsPerKey'>;

/**
 * The port through which a session's inside can be watched (the inspector in
 * src/observability implements it); the engine knows no concrete observer.
 */
export interface SessionObserver {
  /** XState's `inspect` callback for one session actor. */
  observe(sessionId: string): (event: InspectionEvent) => void;
  sessionEnded(sessionId: string): void;
}

export interface EngineStats {
  sessions: number;
  upstreamJobs: number;
  utterancesAccepted: number;
  utterancesEnded: number;
  endedByReason: Record<string, number>;
  /** Times a session paused its upstream because the client was not reading. */
  backpressurePauses: number;
  /** session.start frames refused for a missing or wrong key. */
  authFailures: number;
  /** Client frames refused by the message or text rate limits. */
  rateLimited: number;
  /** Connections closed for flooding. */
  floodCutoffs: number;
  /** Upgrades refused before a session existed, by reason (origin, ip_cap). */
  refusedConnections: Record<string, number>;
}

export interface UtteranceEndedEvent extends EndRecord {
  sessionId: string;
  /** For an end caused by a client STOP: from the STOP frame's arrival to this end going out. */
  stopToEndMs?: number;
}

/**
 * What a session writes to. The WebSocket path and the HTTP speech endpoint each provide
 * one; the session machine and its rules are the same behind both.
 */
export interface SessionTransport {
  send(message: ServerMessage): void;
  sendAudio(stream: number, seq: number, pcm: Int16Array): void;
  close(code: number, reason: string): void;
  /** Bytes written but not yet taken by the peer (backpressure). */
  bufferedBytes(): number;
  isOpen(): boolean;
  /**
   * Liveness check of the peer, called once per heartbeat interval: cuts the connection (which
   * ends the session through CLIENT_GONE) if the peer did not answer the previous probe;
   * otherwise sends the next probe.
   */
  probe?(): void;
}

export type SessionActor = ActorRefFrom<typeof sessionMachine>;

interface SessionIO {
  transport: SessionTransport;
  actor: SessionActor;
  /** The client asked for `session.state` messages (session.start `observe: true`). */
  observe: boolean;
  /** The session's place under its key's cap, given back when the session ends. */
  keyLease?: Lease;
}

export interface SessionHandle {
  sessionId: string;
  /** Send an event to the session actor (ignored once it has ended). */
  send(event: Parameters<SessionActor['send']>[0]): void;
  actor: SessionActor;
}

const defaultRates = [24_000, 16_000, 22_050, 44_100, 48_000, 8_000];

export class VoiceEngine extends EventEmitter<{
  utteranceEnded: [UtteranceEndedEvent];
  utteranceAccepted: [{ sessionId: string; id: string; stream: number; voice: string; mode: string }];
  sessionStarted: [{ sessionId: string }];
  sessionEnded: [{ sessionId: string }];
  providerError: [{ provider: string; error: WireError }];
  providerCircuit: [{ provider: string; state: CircuitStateName }];
}> {
  readonly voices: VoiceInfo[];
  readonly defaultVoice: string;
  readonly sampleRates: number[];
  private readonly routes = new Map<string, VoiceRoute>();
  readonly guards = new Map<string, ProviderGuard>();
  private readonly sessions = new Map<string, SessionIO>();
  private readonly machine;
  private readonly options: Required<
    Omit<VoiceEngineOptions, 'apiKeys' | 'defaultVoice' | 'limits' | 'circuitBreaker' | 'inspector' | 'abuse' | 'maxConnectionsPerIp' | 'allowedOrigins'>
  > &
    Pick<VoiceEngineOptions, 'limits' | 'inspector'>;
  /** Who may open a session and how much each may send, for every transport. */
  readonly admission: Admission;
  private draining = false;
  private liveJobs = 0;
  private counters = {
    accepted: 0,
    ended: 0,
    byReason: {} as Record<string, number>,
    backpressurePauses: 0,
  };
  /** When the STOP being processed for a session arrived (set only while it is processed). */
  private readonly stopArrivedAt = new Map<string, number>();

  constructor(options: VoiceEngineOptions) {
    super();
    if (options.providers.length === 0) throw new Error('voxline needs at least one TTS provider');
    this.options = {
      providers: options.providers,
      sampleRates: options.sampleRates ?? defaultRates,
      chunkMs: options.chunkMs ?? 40,
      highWaterBytes: options.highWaterBytes ?? 256 * 1024,
      lowWaterBytes: options.lowWaterBytes ?? 64 * 1024,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 15_000,
      limits: options.limits,
      inspector: options.inspector,
    };
    if (this.options.chunkMs < 20 || this.options.chunkMs > 100) throw new RangeError('chunkMs must be within 20..100');
    this.admission = new Admission({
      ...options.abuse,
      ...(options.apiKeys ? { apiKeys: options.apiKeys } : {}),
      ...(options.maxConnectionsPerIp !== undefined ? { maxConnectionsPerIp: options.maxConnectionsPerIp } : {}),
      ...(options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {}),
    });
    // `provider:voice` always names one provider's voice; a bare voice id goes to the
    // first provider (in configuration order) that offers it.
    const voices: VoiceInfo[] = [];
    for (const provider of options.providers) {
      if (this.guards.has(provider.name)) throw new Error(`two providers are named "${provider.name}"`);
      const guard = new ProviderGuard(provider.name, {
        ...options.circuitBreaker,
        onStateChange: (state) => this.emit('providerCircuit', { provider: provider.name, state }),
      });
      this.guards.set(provider.name, guard);
      for (const voice of provider.voices) {
        const route = { provider, providerVoice: voice.id, guard };
        this.routes.set(`${provider.name}:${voice.id}`, route);
        if (!this.routes.has(voice.id)) this.routes.set(voice.id, route);
        voices.push(voice);
      }
    }
    this.voices = voices;
    this.defaultVoice = options.defaultVoice ?? this.voices[0]!.id;
    if (!this.routes.has(this.defaultVoice)) throw new Error(`default voice "${this.defaultVoice}" is not offered by any provider`);
    this.sampleRates = this.options.sampleRates;

    const synthesis = createSynthesisLogic({
      resolveVoice: (id) => this.routes.get(id),
      chunkMs: this.options.chunkMs,
      writeAudio: (sessionId, stream, seq, pcm) => this.sendAudio(sessionId, stream, seq, pcm),
      onProviderError: (provider, error) => this.emit('providerError', { provider, error }),
      // Count live upstream jobs so tests and metrics can see that nothing is left behind.
      onJobStart: () => this.liveJobs++,
      onJobGone: () => this.liveJobs--,
    });
    this.machine = sessionMachine.provide({
      actions: {
        sendMessage: ({ context }, message) => this.sendJson(context.sessionId, message),
        sendAudio: ({ context }, audio) => this.sendAudio(context.sessionId, audio.stream, audio.seq, audio.pcm),
        closeConnection: ({ context }, close) => {
          const io = this.sessions.get(context.sessionId);
          if (io?.transport.isOpen()) io.transport.close(close.code, close.reason);
        },
        utteranceEnded: ({ context }, record) => {
          this.counters.ended++;
          this.counters.byReason[record.reason] = (this.counters.byReason[record.reason] ?? 0) + 1;
          const stopAt = record.reason === 'stopped' ? this.stopArrivedAt.get(context.sessionId) : undefined;
          this.emit('utteranceEnded', {
            sessionId: context.sessionId,
            ...record,
            ...(stopAt !== undefined ? { stopToEndMs: performance.now() - stopAt } : {}),
          });
        },
        utteranceAccepted: ({ context }, info) => {
          this.counters.accepted++;
          this.emit('utteranceAccepted', { sessionId: context.sessionId, ...info });
        },
      },
      actors: {
        synthesis,
        drainWatcher: fromCallback(({ input, sendBack }) => {
          const io = this.sessions.get((input as { sessionId: string }).sessionId);
          const timer = setInterval(() => {
            if (!io || io.transport.bufferedBytes() <= this.options.lowWaterBytes) sendBack({ type: 'CLIENT_DRAINED' });
          }, 10);
          return () => clearInterval(timer);
        }),
      },
    });
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Ready to take sessions: every provider warm and not shutting down. */
  isReady(): boolean {
    return !this.draining && this.options.providers.every((p) => p.isReady());
  }

  /** The providers behind this engine (for metrics). */
  get providers(): readonly TtsProvider[] {
    return this.options.providers;
  }

  async ready(): Promise<void> {
    await Promise.all(this.options.providers.map((p) => p.ready()));
  }

  stats(): EngineStats {
    return {
      sessions: this.sessions.size,
      upstreamJobs: this.liveJobs,
      utterancesAccepted: this.counters.accepted,
      utterancesEnded: this.counters.ended,
      endedByReason: { ...this.counters.byReason },
      backpressurePauses: this.counters.backpressurePauses,
      authFailures: this.admission.counters.authFailures,
      rateLimited: this.admission.counters.rateLimited,
      floodCutoffs: this.admission.counters.floodCutoffs,
      refusedConnections: { ...this.admission.counters.refused },
    };
  }

  /**
   * One heartbeat for every connection (ws's own recommended pattern), owned by the engine:
   * started with the first WebSocket session, cleared by shutdown(). A timer per session
   * would cost every idle session a timer, a closure and (as an actor) about 2 KB.
   */
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  private startHeartbeat(): void {
    if (this.heartbeat || this.draining) return;
    this.heartbeat = setInterval(() => {
      for (const io of this.sessions.values()) io.transport.probe?.();
    }, this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  /** Take over an accepted WebSocket: one session actor for its lifetime. */
  handleConnection(ws: WebSocket, _request?: IncomingMessage): void {
    this.startHeartbeat();
    const limiter = this.admission.connectionLimiter();
    let cutOff = false;
    const onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      if (cutOff) return; // frames already in flight from a client being closed
      const verdict = limiter.admitFrame();
      if (verdict === 'cut') {
        cutOff = true;
        transport.send({ type: 'error', code: 'rate_limited', message: 'too many frames; closing' });
        ws.close(1008, 'rate_limited');
        return;
      }
      if (verdict === 'drop') {
        transport.send({ type: 'error', code: 'rate_limited', message: `over ${this.admission.policy.messagesPerSecond} frames per second; frame dropped` });
        return;
      }
      try {
        this.onClientFrame(session, data, isBinary, limiter);
      } catch {
        // A frame handler must never throw into ws (it would be an uncaught exception).
        transport.send({ type: 'error', code: 'internal', message: 'could not process frame' });
      }
    };
    const transport = webSocketTransport(ws);
    const session = this.startSession(transport, () => {
      ws.off('message', onMessage);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000);
    });
    ws.on('message', onMessage);
    ws.on('error', () => {}); // 'close' follows every socket error
    ws.once('close', () => session.send({ type: 'CLIENT_GONE' }));
    if (ws.readyState !== ws.OPEN) session.send({ type: 'CLIENT_GONE' });
  }

  /**
   * Run one session actor over `transport` until it ends; `onEnd` runs once when it has.
   * The caller feeds it events (START, SPEAK, STOP, CLIENT_GONE).
   */
  startSession(transport: SessionTransport, onEnd?: () => void): SessionHandle {
    const sessionId = randomUUID();
    const actor = createActor(this.machine, {
      input: {
        sessionId,
        voices: this.voices,
        defaultVoice: this.defaultVoice,
        sampleRates: this.sampleRates,
        ...(this.options.limits ? { limits: this.options.limits } : {}),
      },
      ...(this.options.inspector ? { inspect: this.options.inspector.observe(sessionId) } : {}),
    });
    const io: SessionIO = { transport, actor, observe: false };
    this.sessions.set(sessionId, io);
    let lastPath = '';
    const send = (event: Parameters<SessionActor['send']>[0]) => {
      if (actor.getSnapshot().status === 'active') actor.send(event);
    };
    const finish = () => {
      if (!this.sessions.delete(sessionId)) return;
      io.keyLease?.release();
      this.options.inspector?.sessionEnded(sessionId);
      onEnd?.();
      this.emit('sessionEnded', { sessionId });
    };
    actor.subscribe({
      next: (snapshot) => {
        if (!io.observe) return;
        const phase = sessionPhase(snapshot);
        if (phase.path === lastPath) return;
        lastPath = phase.path;
        if (transport.isOpen()) transport.send({ type: 'session.state', ...phase });
      },
      complete: finish,
      error: () => {
        // Should never happen (every invoke has onError); if it does, drop only this session.
        transport.close(1011, 'internal');
        finish();
      },
    });
    this.emit('sessionStarted', { sessionId });
    actor.start();
    return { sessionId, send, actor };
  }

  /** Whether `voice` (an id or `provider:id`) is offered. */
  hasVoice(voice: string): boolean {
    return this.routes.has(voice);
  }

  /** Most characters one utterance may hold. */
  get maxTextChars(): number {
    return this.options.limits?.maxTextChars ?? defaultSessionLimits.maxTextChars;
  }

  /**
   * Place `sessionId` under its key's cap (auth and the per-key session cap). The lease is
   * given back when the session ends; false when the session is gone already.
   */
  holdKeyLease(sessionId: string, lease: Lease): boolean {
    const io = this.sessions.get(sessionId);
    if (!io) {
      lease.release();
      return false;
    }
    io.keyLease?.release();
    io.keyLease = lease;
    return true;
  }

  private onClientFrame(session: SessionHandle, data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean, limiter: ConnectionLimiter): void {
    const send = session.send;
    const inHandshake = session.actor.getSnapshot().matches('handshake');
    const sessionId = session.sessionId;
    const reject = (error: ProtocolError) => {
      if (inHandshake) send({ type: 'BAD_START', code: error.code, message: error.message });
      else
        this.sendJson(sessionId, {
          type: 'error',
          code: error.code,
          message: error.message,
          ...(error.id !== undefined ? { id: error.id } : {}),
        });
    };
    if (isBinary) {
      reject(new ProtocolError('bad_request', 'binary frames are not accepted from clients'));
      return;
    }
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
    const message = parseClientMessage(text);
    if (message instanceof ProtocolError) {
      reject(message);
      return;
    }
    switch (message.type) {
      case 'session.start':
        if (!inHandshake) {
          reject(new ProtocolError('bad_request', 'session already started'));
          return;
        }
        if (message.observe) {
          const io = this.sessions.get(sessionId);
          if (io) io.observe = true;
        }
        const admitted = this.admission.admitSession(message.token);
        if (!admitted.ok) {
          const { code, message: text } = admitted.refusal;
          send({ type: 'BAD_START', code, message: code === 'unauthorized' ? 'a valid token is required in session.start' : text });
          return;
        }
        if (!this.holdKeyLease(sessionId, admitted.value)) return;
        send({
          type: 'START',
          sampleRate: message.sampleRate ?? this.sampleRates[0]!,
          ...(message.voice !== undefined ? { voice: message.voice } : {}),
        });
        return;
      case 'speak': {
        const chars = message.request.text.length;
        // Text that can never fit is text_too_long (from the machine, which owns that rule), not
        // rate_limited: a retry could never succeed.
        const fits = chars <= this.maxTextChars && chars <= this.admission.policy.textCharsPerMinute;
        if (fits && !inHandshake && !limiter.admitText(chars)) {
          this.sendJson(sessionId, {
            type: 'error',
            code: 'rate_limited',
            message: `over ${this.admission.policy.textCharsPerMinute} characters of text per minute`,
            id: message.request.id,
          });
          return;
        }
        if (!fits && chars <= this.maxTextChars) {
          this.sendJson(sessionId, {
            type: 'error',
            code: 'text_too_long',
            message: `a speak frame may hold at most ${this.admission.policy.textCharsPerMinute} characters (the per-minute text budget)`,
            id: message.request.id,
          });
          return;
        }
        send({ type: 'SPEAK', request: message.request });
        return;
      }
      case 'stop':
        // The machine announces the ends inside this send; note when the STOP arrived for metrics.
        this.stopArrivedAt.set(sessionId, performance.now());
        try {
          send(message.id !== undefined ? { type: 'STOP', id: message.id } : { type: 'STOP' });
        } finally {
          this.stopArrivedAt.delete(sessionId);
        }
        return;
      case 'ping':
        if (inHandshake) {
          reject(new ProtocolError('bad_request', 'the first frame must be session.start'));
          return;
        }
        this.sendJson(sessionId, { type: 'pong' });
        return;
    }
  }

  private sendJson(sessionId: string, message: ServerMessage): void {
    const io = this.sessions.get(sessionId);
    if (!io?.transport.isOpen()) return;
    try {
      io.transport.send(message);
    } catch {
      this.transportFailed(io);
    }
  }

  /** A transport that throws is treated as a peer that went away; the machine ends what it owned. */
  private transportFailed(io: SessionIO): void {
    queueMicrotask(() => {
      if (io.actor.getSnapshot().status === 'active') io.actor.send({ type: 'CLIENT_GONE' });
    });
    try {
      io.transport.close(1011, 'internal');
    } catch {
      /* already broken */
    }
  }

  private sendAudio(sessionId: string, stream: number, seq: number, pcm: Int16Array): void {
    const io = this.sessions.get(sessionId);
    if (!io?.transport.isOpen()) return;
    try {
      io.transport.sendAudio(stream, seq, pcm);
    } catch {
      this.transportFailed(io);
      return;
    }
    if (io.transport.bufferedBytes() > this.options.highWaterBytes) {
      // Delivered after the current step; the machine pauses the upstream.
      queueMicrotask(() => {
        const snapshot = io.actor.getSnapshot();
        if (snapshot.status !== 'active') return;
        if (!snapshot.matches({ active: { live: { streaming: 'paused' } } })) this.counters.backpressurePauses++;
        io.actor.send({ type: 'CLIENT_BACKPRESSURE' });
      });
    }
  }

  /**
   * Graceful shutdown: refuse new sessions, end every live utterance once (failed,
   * shutting_down), close sockets with 1001, then release the providers.
   */
  async shutdown(timeoutMs = 5_000): Promise<void> {
    this.draining = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    for (const io of [...this.sessions.values()]) {
      if (io.actor.getSnapshot().status === 'active') io.actor.send({ type: 'SHUTDOWN' });
    }
    const deadline = Date.now() + timeoutMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const io of [...this.sessions.values()]) {
      io.actor.stop();
      io.transport.close(1001, 'shutting_down');
    }
    this.sessions.clear();
    await Promise.all(this.options.providers.map((p) => p.close()));
  }
}

/** The WebSocket side of a session: JSON text frames, binary audio frames, ws-level pings. */
function webSocketTransport(ws: WebSocket): SessionTransport {
  // Answered the last ping; the listener lives as long as the socket.
  let answered = true;
  ws.on('pong', () => {
    answered = true;
  });
  return {
    send: (message) => ws.send(JSON.stringify(message)),
    sendAudio: (stream, seq, pcm) => ws.send(encodeAudioFrame(stream, seq, pcm), { binary: true }),
    close: (code, reason) => {
      if (ws.readyState === ws.OPEN) ws.close(code, reason);
      else ws.terminate();
    },
    bufferedBytes: () => ws.bufferedAmount,
    isOpen: () => ws.readyState === ws.OPEN,
    probe: () => {
      if (!answered) {
        ws.terminate();
        return;
      }
      answered = false;
      if (ws.readyState === ws.OPEN) ws.ping();
    },
  };
}
