// The WebSocket transport of the engine: each accepted socket becomes one session for its
// lifetime. This module owns what is WebSocket-shaped: the frame and text limits of each
// connection (from the shared admission policy), decoding client frames into session
// events, the transport that writes JSON and audio frames, and one heartbeat for all sockets.
import type { WebSocket } from 'ws';
import type { Duplex } from 'node:stream';
import type { Admitted, ConnectionLimiter, Lease } from '../engine/admission.js';
import { relayToOwner, type PendingFrame, type Relay } from '../cluster/relay.js';
import type { SessionHandle, SessionTransport, VoiceEngine } from '../engine/voiceEngine.js';
import { encodeAudioFrame } from '../protocol/audioFrame.js';
import { parseClientMessage, ProtocolError, type ClientMessage } from '../protocol/clientMessages.js';
import { CloseCode, closeRequest, wireError, type CloseRequest } from '../../machines/errors.js';

export interface WebSocketSessionsOptions {
  /** WebSocket ping interval; a peer that missed one full interval is disconnected (0: no heartbeat). */
  heartbeatIntervalMs: number;
  /** Backpressure of a relayed connection (the engine's marks). */
  highWaterBytes?: number;
  lowWaterBytes?: number;
}

/**
 * One connection's mutable state: its session (replaced once when the first frame resumes
 * another session) and whether that session was granted listening (binary frames are then
 * microphone audio).
 */
interface ConnectionState {
  ws: WebSocket;
  session: SessionHandle;
  listening: boolean;
  /** A session.start is being admitted, or the owner of a session.resume looked up (a cluster answers asynchronously). */
  starting: boolean;
  /** The connection came relayed from another gateway: it is never relayed again (no loops). */
  relayed: boolean;
  /** Set once the connection is relayed to the gateway that owns its session: frames then go there unchanged. */
  relay: Relay | null;
  transport: WebSocketTransport;
  limiter: ConnectionLimiter;
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
  /** Live connections this gateway relays to their session's owner, and ones relayed here. */
  readonly relays = { out: 0, in: 0 };

  constructor(
    private readonly engine: VoiceEngine,
    private readonly options: WebSocketSessionsOptions,
  ) {}

  /** Take over an accepted WebSocket: one session actor for its lifetime. */
  handleConnection(ws: WebSocket, relayed = false, socket?: Duplex): void {
    this.startHeartbeat();
    const limiter = this.engine.admission.connectionLimiter();
    let cutOff = false;
    const onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      if (cutOff) return; // frames already in flight from a client being closed
      // Microphone frames of a listening session have their own budget (50+ a second).
      const verdict = isBinary && connection.listening ? limiter.admitMicFrame() : limiter.admitFrame();
      if (verdict === 'cut') {
        cutOff = true;
        transport.send({ type: 'error', ...wireError('rate_limited') });
        const cut = closeRequest('rate_limited');
        ws.close(cut.code, cut.reason);
        return;
      }
      if (verdict === 'drop') {
        const { policy } = this.engine.admission;
        const limit = isBinary && connection.listening ? `${policy.micFramesPerSecond} microphone frames` : `${policy.messagesPerSecond} frames`;
        transport.send({ type: 'error', code: 'rate_limited', message: `over ${limit} per second; frame dropped` });
        return;
      }
      if (connection.relay) {
        connection.relay.forward(data, isBinary);
        return;
      }
      try {
        this.onClientFrame(connection, data, isBinary, limiter, onEnd);
      } catch {
        // A frame handler must never throw into ws (it would be an uncaught exception).
        transport.send({ type: 'error', code: 'internal', message: 'could not process frame' });
      }
    };
    const transport = new WebSocketTransport(ws, socket);
    this.transports.add(transport);
    // When the session this connection serves ends (or a resume elsewhere takes it over).
    const onEnd = () => {
      this.transports.delete(transport);
      ws.off('message', onMessage);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(CloseCode.normal);
    };
    const connection: ConnectionState = {
      ws,
      session: this.engine.startSession(transport, onEnd),
      listening: false,
      starting: false,
      relayed,
      relay: null,
      transport,
      limiter,
    };
    ws.on('message', onMessage);
    ws.on('error', () => {}); // 'close' follows every socket error
    if (relayed) this.relays.in++;
    ws.once('close', () => {
      if (relayed) this.relays.in--;
      if (!connection.relay) {
        connection.session.connectionLost(transport);
        return;
      }
      this.relays.out--;
      connection.relay.clientGone();
      this.transports.delete(transport);
      ws.off('message', onMessage);
    });
    if (ws.readyState !== ws.OPEN) connection.session.connectionLost(transport);
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
    connection: ConnectionState,
    data: Buffer | ArrayBuffer | Buffer[],
    isBinary: boolean,
    limiter: ConnectionLimiter,
    onEnd: () => void,
  ): void {
    const { session } = connection;
    const send = session.send;
    const inHandshake = session.actor.getSnapshot().matches('handshake');
    const reject = (error: ProtocolError) => {
      if (inHandshake) send({ type: 'BAD_START', code: error.code, message: error.message });
      else session.reply({ type: 'error', code: error.code, message: error.message, ...(error.id !== undefined ? { id: error.id } : {}) });
    };
    if (isBinary) {
      // Microphone audio, raw, in a session granted listening; anywhere else today's refusal.
      if (inHandshake || !connection.listening) {
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
        if (!inHandshake || connection.starting) {
          reject(new ProtocolError('bad_request', 'session already started'));
          return;
        }
        if (message.observe) session.watchState();
        const verdict = admission.admitSession(message.token);
        if (!(verdict instanceof Promise)) {
          this.start(connection, message, verdict);
          return;
        }
        // A cluster's cap answers from Redis; frames meanwhile find the handshake still going.
        connection.starting = true;
        verdict.then(
          (admitted) => {
            connection.starting = false;
            this.start(connection, message, admitted);
          },
          () => {
            connection.starting = false;
            send({ type: 'BAD_START', code: 'internal', message: 'the session could not be admitted; try again' });
          },
        );
        return;
      }
      case 'session.resume': {
        if (!inHandshake || connection.starting) {
          reject(new ProtocolError('bad_request', 'session.resume must be the first frame of a connection'));
          return;
        }
        const directory = this.engine.directory;
        // Held here and recorded: another gateway may have taken it over (this one was frozen), so ask.
        const mayBeElsewhere = !this.engine.holdsSession(message.sessionId) || this.engine.recordsSession(message.sessionId);
        if (directory && !connection.relayed && mayBeElsewhere) {
          // Maybe another gateway of the cluster owns it: ask the directory, then relay there.
          connection.starting = true;
          directory.ownerOf(message.sessionId).then(
            (owner) => {
              connection.starting = false;
              if (connection.ws.readyState !== connection.ws.OPEN) return;
              if (owner && owner !== directory.self) {
                this.engine.letGoOf(message.sessionId);
                this.engine.abandonHandshake(session, 'relayed');
                this.relays.out++;
                connection.relay = relayToOwner(connection.ws, owner, text, {
                  highWaterBytes: this.options.highWaterBytes,
                  lowWaterBytes: this.options.lowWaterBytes,
                  // The owner died: take its session over here, on a new handshake of this connection.
                  ...(this.engine.movesSessions
                    ? {
                        onUnreachable: (pending: PendingFrame[]) => {
                          connection.relay = null;
                          this.relays.out--;
                          connection.session = this.engine.startSession(connection.transport, onEnd);
                          this.move(connection, message, onEnd, pending);
                        },
                      }
                    : {}),
                });
                return;
              }
              // Ours, or no live owner (its entry expired with its gateway): resume here, or take it over.
              if (this.engine.holdsSession(message.sessionId) || !this.engine.movesSessions) this.resume(connection, message, onEnd);
              else this.move(connection, message, onEnd, []);
            },
            () => {
              connection.starting = false;
              send({ type: 'BAD_START', code: 'resume_failed', message: 'unavailable: the session directory cannot be reached; try again' });
            },
          );
          return;
        }
        this.resume(connection, message, onEnd);
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

  /**
   * session.resume of a session whose gateway died: taken over here from the cluster's record
   * (VoiceEngine.moveSession). Frames the client sent meanwhile follow once it is back.
   */
  private move(connection: ConnectionState, message: Extract<ClientMessage, { type: 'session.resume' }>, onEnd: () => void, pending: PendingFrame[]): void {
    connection.starting = true;
    const request = { sessionId: message.sessionId, token: message.token, cursor: message.cursor };
    const refuse = (text: string) => {
      if (connection.session.actor.getSnapshot().status === 'active') connection.session.send({ type: 'BAD_START', code: 'resume_failed', message: text });
    };
    this.engine.moveSession(connection.session, request, onEnd).then(
      (moved) => {
        connection.starting = false;
        if (!moved.ok) {
          refuse(`${moved.reason}: ${moved.message}`);
          return;
        }
        connection.session = moved.session;
        connection.listening = moved.session.listens();
        for (const frame of pending) this.onClientFrame(connection, frame.data, frame.isBinary, connection.limiter, onEnd);
      },
      () => {
        connection.starting = false;
        refuse('unavailable: the session could not be taken over; try again');
      },
    );
  }

  /** session.resume honoured here (this process holds the session), or refused. */
  private resume(connection: ConnectionState, message: Extract<ClientMessage, { type: 'session.resume' }>, onEnd: () => void): void {
    const resumed = this.engine.resumeSession(connection.session, { sessionId: message.sessionId, token: message.token, cursor: message.cursor }, onEnd);
    if (!resumed.ok) {
      connection.session.send({ type: 'BAD_START', code: 'resume_failed', message: `${resumed.reason}: ${resumed.message}` });
      return;
    }
    connection.session = resumed.session;
    connection.listening = resumed.session.listens();
  }

  /** session.start admitted or refused: a granted session gets its listen verdict and resume offer with START. */
  private start(connection: ConnectionState, message: Extract<ClientMessage, { type: 'session.start' }>, admitted: Admitted<Lease>): void {
    const { session } = connection;
    const send = session.send;
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
    connection.listening = listen?.granted === true;
    // Only a client that asks is offered a resume: version 1 clients see nothing new.
    const resume = message.resume
      ? session.offerResume({
          sampleRate: message.sampleRate ?? this.engine.sampleRates[0]!,
          ...(message.voice !== undefined ? { voice: message.voice } : {}),
          ...(message.listen ? { listen: message.listen } : {}),
          ...(message.agent ? { agent: message.agent } : {}),
          ...(message.observe ? { observe: true } : {}),
          keyId: this.engine.admission.keyIdOf(message.token),
        })
      : null;
    send({
      type: 'START',
      sampleRate: message.sampleRate ?? this.engine.sampleRates[0]!,
      ...(message.voice !== undefined ? { voice: message.voice } : {}),
      ...(listen ? { listen } : {}),
      ...(message.agent ? { agent: message.agent } : {}),
      ...(resume ? { resume } : {}),
    });
    // A listening client is paced to its playback: barge-in ends what the user still hears.
    if (listen?.granted) session.pacePlayout();
  }
}

/** The WebSocket side of a session: JSON text frames, binary audio frames, ws-level pings. */
class WebSocketTransport implements SessionTransport {
  /** Answered the last ping; the listener lives as long as the socket. */
  private answered = true;

  /** The socket is corked until the end of this tick (see `batch`). */
  private corked = false;
  private readonly uncork = () => {
    this.corked = false;
    this.socket?.uncork();
  };

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded TCP socket under `ws`, corked per tick; without it every frame is its own write. */
    private readonly socket?: Duplex,
  ) {
    ws.on('pong', () => {
      this.answered = true;
    });
  }

  send(message: Parameters<SessionTransport['send']>[0]): void {
    this.batch();
    this.ws.send(JSON.stringify(message));
  }

  sendAudio(stream: number, seq: number, pcm: Int16Array): void {
    this.batch();
    this.ws.send(encodeAudioFrame(stream, seq, pcm), { binary: true });
  }

  /**
   * Frames sent in one tick (a provider block cut into several frames, an end and what follows
   * it) leave in one write: the socket is corked at the first and uncorked at the end of the
   * tick. Each write to a socket is a system call that wakes the peer; a bare relay forwards a
   * provider read as one message, and frames cut from it should not cost more calls than that.
   */
  private batch(): void {
    if (this.corked || !this.socket || this.socket.destroyed) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(this.uncork);
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
