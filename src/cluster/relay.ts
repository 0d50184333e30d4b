// A client resuming on a gateway that does not own its session is relayed to the owner: this
// gateway opens a WebSocket to the owner's voice endpoint, sends the client's session.resume
// as its first frame, and from then on passes every frame both ways unchanged. The owner
// honours the resume exactly as in one process (src/engine/outboundLog.ts), so the relay adds
// no rule of its own: frames keep their order (one TCP connection each way), backpressure
// holds (the owner's reads pause while the client's socket is full), and either side's close
// closes the other.
import WebSocket from 'ws';
import { CloseCode, wireError } from '../../machines/errors.js';

/** The header that marks a relayed connection: the owner never relays it further (no loops). */
export const relayedHeader = 'x-voxline-relayed';

export interface RelayOptions {
  /** The owner must accept the connection within this long. */
  connectTimeoutMs?: number;
  /** Pause reading from the owner while the client's socket holds more than this… */
  highWaterBytes?: number;
  /** …until it is back under this. */
  lowWaterBytes?: number;
  /** Most frames (and bytes) a client may send before the owner's connection is open. */
  maxPendingFrames?: number;
  maxPendingBytes?: number;
  /**
   * The owner cannot be reached (it died): instead of refusing the resume, hand the connection
   * back, with the frames the client sent meanwhile, so this gateway can take the session over.
   */
  onUnreachable?: (pending: PendingFrame[]) => void;
}

export interface PendingFrame {
  data: Buffer | ArrayBuffer | Buffer[];
  isBinary: boolean;
}

export interface Relay {
  /** A frame from the client, after this gateway's own rate limits. */
  forward(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void;
  /** The client's connection closed: the owner sees its connection close (the session detaches). */
  clientGone(): void;
}

/** Close codes that mean the owner vanished rather than closed (no close frame came). */
const vanished = new Set([1005, 1006, 1015]);
/** WebSocket "service restart": the client should resume (elsewhere). */
const serviceRestart = 1012;

export function relayToOwner(client: WebSocket, ownerUrl: string, firstFrame: string, options: RelayOptions = {}): Relay {
  const highWater = options.highWaterBytes ?? 256 * 1024;
  const lowWater = options.lowWaterBytes ?? 64 * 1024;
  const maxPendingFrames = options.maxPendingFrames ?? 64;
  const maxPendingBytes = options.maxPendingBytes ?? 1024 * 1024;
  const upstream = new WebSocket(ownerUrl, {
    headers: { [relayedHeader]: '1' },
    perMessageDeflate: false,
    handshakeTimeout: options.connectTimeoutMs ?? 3_000,
  });
  let opened = false;
  let done = false;
  let pending: PendingFrame[] = [];
  let pendingBytes = 0;
  let drainPoll: ReturnType<typeof setInterval> | null = null;

  const finish = () => {
    done = true;
    pending = [];
    if (drainPoll) clearInterval(drainPoll);
    drainPoll = null;
  };
  const closeClient = (code: number, reason: string) => {
    if (client.readyState === WebSocket.OPEN || client.readyState === WebSocket.CONNECTING) client.close(code, reason);
  };

  upstream.on('error', () => {
    /* 'close' follows every error */
  });
  upstream.on('open', () => {
    opened = true;
    upstream.send(firstFrame);
    for (const frame of pending) upstream.send(frame.data, { binary: frame.isBinary });
    pending = [];
    pendingBytes = 0;
  });
  upstream.on('message', (data: Buffer, isBinary) => {
    if (client.readyState !== WebSocket.OPEN) return;
    client.send(data, { binary: isBinary });
    if (client.bufferedAmount > highWater && !drainPoll) {
      // The client is not reading: stop reading from the owner, whose own backpressure takes over.
      upstream.pause();
      drainPoll = setInterval(() => {
        if (client.bufferedAmount > lowWater && client.readyState === WebSocket.OPEN) return;
        clearInterval(drainPoll!);
        drainPoll = null;
        upstream.resume();
      }, 10);
    }
  });
  upstream.on('close', (code, reason) => {
    const wasDone = done;
    const held = pending;
    finish();
    if (wasDone) return;
    if (!opened && options.onUnreachable && client.readyState === WebSocket.OPEN) {
      options.onUnreachable(held);
      return;
    }
    if (!opened) {
      // The owner could not be reached: nobody can honour this resume now.
      if (client.readyState === WebSocket.OPEN) {
        client.send(JSON.stringify({ type: 'error', ...wireError('resume_failed', 'unavailable: the gateway holding this session cannot be reached') }));
      }
      closeClient(CloseCode.policyViolation, 'resume_failed');
      return;
    }
    // The owner closed: pass its close on; if it vanished without one, ask the client to resume.
    if (vanished.has(code)) closeClient(serviceRestart, 'session owner gone');
    else closeClient(code, reason.toString('utf8'));
  });

  return {
    forward(data, isBinary) {
      if (done) return;
      if (opened) {
        if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: isBinary });
        return;
      }
      const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
      pendingBytes += bytes;
      if (pending.length >= maxPendingFrames || pendingBytes > maxPendingBytes) {
        // A client that floods before its session is back is cut, not buffered.
        finish();
        upstream.terminate();
        closeClient(CloseCode.policyViolation, 'too many frames before session.ready');
        return;
      }
      pending.push({ data, isBinary });
    },
    clientGone() {
      if (done) return;
      finish();
      if (upstream.readyState === WebSocket.OPEN) upstream.close(CloseCode.normal);
      else upstream.terminate();
    },
  };
}
