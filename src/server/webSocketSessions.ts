// The WebSocket transport of the engine: each accepted socket becomes one session for its
// lifetime. This module owns what is WebSocket-shaped: the frame and text limits of each
// connection (from the shared admission policy), decoding client frames into session
// events, the transport that writes JSON and audio frames, and one heartbeat for all sockets.
import type { WebSocket } from 'ws';
import type { ConnectionLimiter } from '../engine/admission.js';
import type { SessionHandle, SessionTransport, VoiceEngine } from '../engine/voiceEngine.js';
import { encodeAudioFrame } from '../protocol/audioFrame.js';
import { parseClientMessage, ProtocolError } from '../protocol/clientMessages.js';
import { CloseCode, closeRequest, wireError, type CloseRequest } from '../../machines/errors.js';

export interface WebSocketSessionsOptions {
  /** WebSocket ping interval; a peer that missed one full interval is disconnected (0: no heartbeat). */
  heartbeatIntervalMs: number;
}

/** Whether this connection's session was granted listening (binary frames are then microphone audio). */
interface ListeningFlag {
  granted: boolean;
}

export class WebSocketSessions {
  private readonly transports = new Set<WebSocketTransport>();
  /**
   * One heartbeat for every connection (ws's own recommended pattern): started with the first
   * socket, cleared by close(). A timer per session would cost every idle session a timer, a
   * closure and (as an actor) about 2 KB.
   */
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private closed = false;

  constructor(
    private readonly engine: VoiceEngine,
    private readonly options: WebSocketSessionsOptions,
  ) {}

  /** Take over an accepted WebSocket: one session actor for its lifetime. */
  handleConnection(ws: WebSocket): void {
    this.startHeartbeat();
    const limiter = this.engine.admission.connectionLimiter();
    let cutOff = false;
    const listening: ListeningFlag = { granted: false };
    const onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      if (cutOff) return; // frames already in flight from a client being closed
      // Microphone frames of a listening session have their own budget (50+ a second).
      const verdict = isBinary && listening.granted ? limiter.admitMicFrame() : limiter.admitFrame();
      if (verdict === 'cut') {
        cutOff = true;
        transport.send({ type: 'error', ...wireError('rate_limited') });
        const cut = closeRequest('rate_limited');
        ws.close(cut.code, cut.reason);
        return;
      }
      if (verdict === 'drop') {
        transport.send({ type: 'error', code: 'rate_limited', message: `over ${this.engine.admission.policy.messagesPerSecond} frames per second; frame dropped` });
        return;
      }
      try {
        this.onClientFrame(session, data, isBinary, limiter, listening);
      } catch {
        // A frame handler must never throw into ws (it would be an uncaught exception).
        transport.send({ type: 'error', code: 'internal', message: 'could not process frame' });
      }
    };
    const transport = new WebSocketTransport(ws);
    this.transports.add(transport);
    const session = this.engine.startSession(transport, () => {
      this.transports.delete(transport);
      ws.off('message', onMessage);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(CloseCode.normal);
    });
    ws.on('message', onMessage);
    ws.on('error', () => {}); // 'close' follows every socket error
    ws.once('close', () => session.send({ type: 'CLIENT_GONE' }));
    if (ws.readyState !== ws.OPEN) session.send({ type: 'CLIENT_GONE' });
  }

  /** Stop the heartbeat (shutdown). Idempotent. */
  close(): void {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private startHeartbeat(): void {
    if (this.heartbeat || this.closed || this.options.heartbeatIntervalMs <= 0) return;
    this.heartbeat = setInterval(() => {
      for (const transport of this.transports) transport.probe();
    }, this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  /** One client frame: decoded, checked against the handshake and the text budget, and handed to the session. */
  private onClientFrame(
    session: SessionHandle,
    data: Buffer | ArrayBuffer | Buffer[],
    isBinary: boolean,
    limiter: ConnectionLimiter,
    listening: ListeningFlag,
  ): void {
    const send = session.send;
    const inHandshake = session.actor.getSnapshot().matches('handshake');
    const reject = (error: ProtocolError) => {
      if (inHandshake) send({ type: 'BAD_START', code: error.code, message: error.message });
      else session.reply({ type: 'error', code: error.code, message: error.message, ...(error.id !== undefined ? { id: error.id } : {}) });
    };
    if (isBinary) {
      // Microphone audio, raw, in a session granted listening; anywhere else today's refusal.
      if (inHandshake || !listening.granted) {
        reject(new ProtocolError('bad_request', 'binary frames are not accepted from clients'));
        return;
      }
      const payload = Buffer.isBuffer(data) ? data : data instanceof ArrayBuffer ? new Uint8Array(data) : Buffer.concat(data);
      send({ type: 'MIC_AUDIO', payload });
      return;
    }
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
    const message = parseClientMessage(text);
    if (message instanceof ProtocolError) {
      reject(message);
      return;
    }
    const { admission } = this.engine;
    switch (message.type) {
      case 'session.start': {
        if (!inHandshake) {
          reject(new ProtocolError('bad_request', 'session already started'));
          return;
        }
        if (message.observe) session.watchState();
        const admitted = admission.admitSession(message.token);
        if (!admitted.ok) {
          const { code, message: text } = admitted.refusal;
          send({ type: 'BAD_START', code, message: code === 'unauthorized' ? 'a valid token is required in session.start' : text });
          return;
        }
        if (!session.holdKeyLease(admitted.value)) return;
        if (message.agent) {
          // The agent answers what it hears: without ears it has nothing to answer.
          if (!message.listen) {
            send({ type: 'BAD_START', code: 'bad_request', message: 'session.start.agent needs session.start.listen' });
            return;
          }
          if (message.agent.voice !== undefined && !this.engine.offersVoice(message.agent.voice)) {
            send({ type: 'BAD_START', code: 'unknown_voice', message: `unknown voice "${message.agent.voice.slice(0, 128)}" for the agent` });
            return;
          }
        }
        const listen = message.listen ? this.engine.listenVerdict(message.listen) : undefined;
        listening.granted = listen?.granted === true;
        send({
          type: 'START',
          sampleRate: message.sampleRate ?? this.engine.sampleRates[0]!,
          ...(message.voice !== undefined ? { voice: message.voice } : {}),
          ...(listen ? { listen } : {}),
          ...(message.agent ? { agent: message.agent } : {}),
        });
        // A listening client is paced to its playback: barge-in ends what the user still hears.
        if (listen?.granted) session.pacePlayout();
        return;
      }
      case 'speak': {
        const chars = message.request.text.length;
        const budget = admission.policy.textCharsPerMinute;
        // Text that can never fit is text_too_long (over maxTextChars the machine, which owns
        // that rule, says so), never rate_limited: a retry could never succeed.
        if (chars > budget && chars <= this.engine.maxTextChars) {
          session.reply({
            type: 'error',
            code: 'text_too_long',
            message: `a speak frame may hold at most ${budget} characters (the per-minute text budget)`,
            id: message.request.id,
          });
          return;
        }
        if (chars <= this.engine.maxTextChars && !inHandshake && !limiter.admitText(chars)) {
          session.reply({ type: 'error', code: 'rate_limited', message: `over ${budget} characters of text per minute`, id: message.request.id });
          return;
        }
        send({ type: 'SPEAK', request: message.request });
        return;
      }
      case 'stop':
        session.stop(message.id);
        return;
      case 'input.commit':
        if (inHandshake) {
          reject(new ProtocolError('bad_request', 'the first frame must be session.start'));
          return;
        }
        send({ type: 'COMMIT' });
        return;
      case 'playback':
        if (inHandshake) {
          reject(new ProtocolError('bad_request', 'the first frame must be session.start'));
          return;
        }
        send({ type: 'PLAYBACK', stream: message.stream, playedMs: message.playedMs });
        return;
      case 'ping':
        if (inHandshake) {
          reject(new ProtocolError('bad_request', 'the first frame must be session.start'));
          return;
        }
        session.reply({ type: 'pong' });
        return;
    }
  }
}

/** The WebSocket side of a session: JSON text frames, binary audio frames, ws-level pings. */
class WebSocketTransport implements SessionTransport {
  /** Answered the last ping; the listener lives as long as the socket. */
  private answered = true;

  constructor(private readonly ws: WebSocket) {
    ws.on('pong', () => {
      this.answered = true;
    });
  }

  send(message: Parameters<SessionTransport['send']>[0]): void {
    this.ws.send(JSON.stringify(message));
  }

  sendAudio(stream: number, seq: number, pcm: Int16Array): void {
    this.ws.send(encodeAudioFrame(stream, seq, pcm), { binary: true });
  }

  close({ code, reason }: CloseRequest): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason);
    else this.ws.terminate();
  }

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  isOpen(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** Cuts a peer that did not answer the previous ping (which ends its session through CLIENT_GONE), else pings again. */
  probe(): void {
    if (!this.answered) {
      this.ws.terminate();
      return;
    }
    this.answered = false;
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }
}
