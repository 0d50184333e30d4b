// HTTP + WebSocket front of the engine: attach to an embedder's http.Server, or run standalone.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { VoiceEngine, type VoiceEngineOptions } from '../engine/voiceEngine.js';
import { espeakProvider } from '../providers/espeak/espeakProvider.js';
import type { TtsProvider } from '../providers/types.js';
import { createSpeechEndpoint, speechPaths } from './speechEndpoint.js';
import { createEngineMetrics } from '../observability/metrics.js';
import { Gauge, type Registry } from 'prom-client';
import { SessionInspector } from '../observability/inspector.js';
import { httpStatus, statusLine } from '../protocol/httpStatus.js';
import { requestTarget } from './requestTarget.js';
import { WebSocketSessions } from './webSocketSessions.js';
import { relayedHeader } from '../cluster/relay.js';

export interface VoxlineOptions extends Partial<VoiceEngineOptions> {
  /** WebSocket path (default `/v1/voice`). */
  path?: string;
  /** Largest accepted client frame in bytes; larger ones close the connection with 1009 (default 1 MiB). */
  maxFrameBytes?: number;
  /** Number of pre-warmed embedded-voice workers when no providers are given (default 2). */
  espeakWorkers?: number;
  /** Prometheus metrics at GET /metrics (default on). */
  metrics?: boolean;
  /** Live session inspector at /inspect (default off: it shows every session's states and event names). */
  inspect?: boolean;
  /** Largest speech request body in bytes (default: enough for `maxTextChars` of text, 64 KiB at the default limits); larger gets 413. */
  maxBodyBytes?: number;
  /** A speech request body must arrive within this long (default 10 s); a slower one gets 408. */
  bodyTimeoutMs?: number;
  /** WebSocket ping interval; a peer that missed one full interval is disconnected (default 15 s). */
  heartbeatIntervalMs?: number;
  /** On close, how long sockets get to finish their close handshake before they are cut (default 2 s). */
  closeGraceMs?: number;
  /**
   * On close, how long resumable sessions may go on after their clients were sent
   * `session.goaway` and a 1012 close (they resume on another gateway of a cluster, which relays
   * them back here): until nothing plays or waits in them, at most this long (default 0: no drain).
   */
  drainMs?: number;
  /** Serve https:// and wss:// with this certificate and key (PEM), standalone server only. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface AttachedVoxline {
  engine: VoiceEngine;
  /** Serve voxline's HTTP routes (`/`, `/healthz`, `/readyz`, `POST /v1/audio/speech`); returns false for other paths. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /** Graceful shutdown of the engine (the http.Server stays the embedder's to close). */
  close(): Promise<void>;
  /** The registry behind GET /metrics (null with `metrics: false`), for an embedder's own metrics. */
  metricsRegistry: Registry | null;
}

const pagePath = fileURLToPath(new URL('../../../public/index.html', import.meta.url));
const pageFallbackPath = fileURLToPath(new URL('../../public/index.html', import.meta.url));

const clientPaths = [
  fileURLToPath(new URL('../../client/voxline-client.js', import.meta.url)), // from dist/src/server
  fileURLToPath(new URL('../../dist/client/voxline-client.js', import.meta.url)), // from src/server
];

/** The browser module, built by `npm run build:client`. */
function loadClient(): string | null {
  for (const p of clientPaths) {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      /* try the next location */
    }
  }
  return null;
}

function loadPage(): string {
  for (const p of [pagePath, pageFallbackPath]) {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      /* try the next location */
    }
  }
  return '<!doctype html><title>voxline</title><p>voxline is running.</p>';
}

function defaultProviders(options: VoxlineOptions): TtsProvider[] {
  return options.providers ?? [espeakProvider({ size: options.espeakWorkers ?? 2 })];
}

/** Attach the voice engine to an existing http.Server (WebSocket upgrades on `path`). */
export function attachVoxline(server: Server, options: VoxlineOptions = {}): AttachedVoxline {
  return attach(server, options, false);
}

/** `ownsServer`: no one else handles this server's upgrades, so other paths get a 404. */
function attach(server: Server, options: VoxlineOptions, ownsServer: boolean): AttachedVoxline {
  const path = options.path ?? '/v1/voice';
  const inspector = options.inspect ? new SessionInspector() : undefined;
  const engine = new VoiceEngine({ ...options, providers: defaultProviders(options), ...(inspector ? { inspector } : {}) });
  const metrics = options.metrics === false ? null : createEngineMetrics(engine);
  void engine.ready().catch(() => {
    /* readiness is reported by /readyz; sessions on an unready provider end with provider_unavailable */
  });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxFrameBytes ?? 1024 * 1024,
    perMessageDeflate: false, // PCM does not compress; deflate only costs CPU and memory
  });
  const webSockets = new WebSocketSessions(engine, {
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 15_000,
    ...(options.highWaterBytes !== undefined ? { highWaterBytes: options.highWaterBytes } : {}),
    ...(options.lowWaterBytes !== undefined ? { lowWaterBytes: options.lowWaterBytes } : {}),
  });
  if (metrics && options.sessionDirectory) {
    new Gauge({
      name: 'voxline_cluster_relays',
      help: 'Live relayed connections: out, resumes this gateway passes to their session’s owner; in, ones another gateway passes here.',
      labelNames: ['direction'],
      registers: [metrics.registry],
      collect() {
        this.set({ direction: 'out' }, webSockets.relays.out);
        this.set({ direction: 'in' }, webSockets.relays.in);
      },
    });
  }
  // A connection another gateway relays here (a resume of a session this one owns) is never relayed on.
  wss.on('connection', (ws, req) => webSockets.handleConnection(ws, req.headers[relayedHeader] === '1', req.socket));

  const admission = engine.admission;
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const target = requestTarget(req);
    if (target === null) return refuse(socket, 400);
    if (target.pathname !== path) {
      // Someone else's upgrade when attached to an embedder's server; a 404 when the server is ours.
      if (ownsServer) refuse(socket, 404);
      return;
    }
    socket.on('error', () => {});
    // Draining: no new sessions, but the resumes of this gateway's own sessions, relayed by another, come in.
    if (engine.isDraining && req.headers[relayedHeader] !== '1') return refuse(socket, 503);
    const admitted = admission.admitConnection(req.socket.remoteAddress ?? 'unknown', req.headers.origin);
    if (!admitted.ok) return refuse(socket, httpStatus(admitted.refusal.code));
    socket.once('close', () => admitted.value.release());
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  server.on('upgrade', onUpgrade);

  const speech = createSpeechEndpoint(engine, {
    // The body is JSON around at most maxTextChars of text (up to 4 bytes each when escaped
    // as UTF-8; \uXXXX escapes are 6 of 2-byte UTF-16 units), plus the other fields.
    maxBodyBytes: options.maxBodyBytes ?? Math.max(64 * 1024, engine.maxTextChars * 6 + 4096),
    bodyTimeoutMs: options.bodyTimeoutMs ?? 10_000,
  });
  let page: string | null = null;
  let client: string | null = null;
  const handleRequest = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = requestTarget(req);
    if (url === null) {
      json(res, 400, { error: { code: 'bad_request', message: 'the request target is not a valid URL' } });
      return true;
    }
    if ((speechPaths as readonly string[]).includes(url.pathname)) {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'use POST', type: 'invalid_request_error', param: null, code: null } }));
        return true;
      }
      speech(req, res).catch(() => json(res, 500, { error: { code: 'internal', message: 'internal error' } }));
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (inspector && url.pathname.startsWith('/inspect')) return inspector.handle(req, res);
    switch (url.pathname) {
      case '/metrics':
        if (!metrics) return false;
        metrics.render().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.contentType });
            res.end(text);
          },
          () => json(res, 500, { error: { code: 'internal', message: 'metrics failed' } }),
        );
        return true;
      case '/':
      case '/index.html':
        page ??= loadPage();
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
        res.end(page);
        return true;
      case '/client/voxline-client.js':
        client ??= loadClient();
        if (client === null) {
          json(res, 404, { error: { code: 'not_built', message: 'run `npm run build:client`' } });
          return true;
        }
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' });
        res.end(client);
        return true;
      case '/healthz':
        json(res, 200, { status: 'ok' });
        return true;
      case '/readyz': {
        const ready = engine.isReady();
        json(res, ready ? 200 : 503, { ready, draining: engine.isDraining, ...engine.stats() });
        return true;
      }
      default:
        return false;
    }
  };

  let closed: Promise<void> | null = null;
  return {
    engine,
    handleRequest,
    metricsRegistry: metrics?.registry ?? null,
    close() {
      closed ??= (async () => {
        inspector?.close();
        webSockets.close();
        // Upgrades stay handled through the drain: new sessions get 503, but this gateway's own
        // sessions come back through another gateway's relay.
        await engine.shutdown(5_000, options.drainMs ?? 0);
        server.off('upgrade', onUpgrade);
        metrics?.detach();
        // Every session has ended and sent its close frame; a peer that does not answer the
        // close handshake in time (one that stopped reading) is cut, so close never hangs on it.
        const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
        const cut = setTimeout(() => {
          for (const ws of wss.clients) ws.terminate();
        }, options.closeGraceMs ?? 2_000);
        await closed;
        clearTimeout(cut);
      })();
      return closed;
    },
  };
}

export interface VoxlineServer extends AttachedVoxline {
  server: Server;
  /** Start listening; resolves with the ws:// URL of the voice endpoint. */
  listen(port?: number, host?: string): Promise<{ url: string; port: number; host: string }>;
}

/** A standalone voxline server: voice endpoint, demo page and health routes. */
export function createVoxlineServer(options: VoxlineOptions = {}): VoxlineServer {
  const server: Server = options.tls ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }) : createServer();
  const scheme = options.tls ? 'https' : 'http';
  const attached = attach(server, options, true);
  server.on('request', (req, res) => {
    try {
      if (!attached.handleRequest(req, res)) json(res, 404, { error: { code: 'not_found', message: 'no such route' } });
    } catch {
      // A bug in one route must cost one request, never the process.
      if (!res.headersSent) json(res, 500, { error: { code: 'internal', message: 'internal error' } });
      else res.destroy();
    }
  });
  // Every socket, upgraded or not, so a close never waits on a peer that went quiet.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    ...attached,
    server,
    listen(port = 8080, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          resolve({ url: `${scheme}://${shownHost}:${address.port}`, port: address.port, host: address.address });
        });
      });
    },
    async close() {
      await attached.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Requests still running have had the drain; what is left of them now is cut.
      const cut = setTimeout(() => {
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }, options.closeGraceMs ?? 2_000);
      await closed;
      clearTimeout(cut);
    },
  };
}

/** Answer an upgrade we will not take with a bare status, then let go of the socket. */
function refuse(socket: Duplex, status: number): void {
  socket.on('error', () => {});
  // end() alone leaves the socket half-open for as long as the peer keeps its side open.
  socket.end(`HTTP/1.1 ${statusLine(status)}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
  setTimeout(() => socket.destroy(), 1_000).unref(); // a peer that does not read cannot hold it
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
