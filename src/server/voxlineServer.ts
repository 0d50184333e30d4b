// HTTP + WebSocket front of the engine: attach to an embedder's http.Server, or run standalone.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { VoiceEngine, type VoiceEngineOptions } from '../engine/voiceEngine.js';
import { espeakProvider } from '../providers/espeak/espeakProvider.js';
import type { TtsProvider } from '../providers/types.js';
import { createSpeechEndpoint, speechPaths } from './speechEndpoint.js';
import { createEngineMetrics } from '../observability/metrics.js';
import { SessionInspector } from '../observability/inspector.js';

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
  /** Concurrent WebSocket connections per client IP (default 256); more get HTTP 429. */
  maxConnectionsPerIp?: number;
  /** Browser origins allowed to open sessions; when set, an upgrade with another `Origin` gets 403. Clients that send no Origin (servers, CLIs) are not affected. */
  allowedOrigins?: string[];
  /** Serve https:// and wss:// with this certificate and key (PEM), standalone server only. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface AttachedVoxline {
  engine: VoiceEngine;
  /** Serve voxline's HTTP routes (`/`, `/healthz`, `/readyz`, `POST /v1/audio/speech`); returns false for other paths. */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /** Graceful shutdown of the engine (the http.Server stays the embedder's to close). */
  close(): Promise<void>;
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
  wss.on('connection', (ws, req) => engine.handleConnection(ws, req));

  const perIp = new Map<string, number>();
  const maxPerIp = options.maxConnectionsPerIp ?? 256;
  const origins = options.allowedOrigins ? new Set(options.allowedOrigins) : null;
  const refuse = (socket: Duplex, status: string) => socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== path) return; // someone else's upgrade
    socket.on('error', () => {});
    if (engine.isDraining) return refuse(socket, '503 Service Unavailable');
    const origin = req.headers.origin;
    if (origins && origin !== undefined && !origins.has(origin)) {
      engine.countRefusal('origin');
      return refuse(socket, '403 Forbidden');
    }
    const ip = req.socket.remoteAddress ?? 'unknown';
    const open = perIp.get(ip) ?? 0;
    if (open >= maxPerIp) {
      engine.countRefusal('ip_cap');
      return refuse(socket, '429 Too Many Requests');
    }
    perIp.set(ip, open + 1);
    socket.once('close', () => {
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
    });
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  server.on('upgrade', onUpgrade);

  const speech = createSpeechEndpoint(engine, { maxBodyBytes: options.maxFrameBytes ?? 1024 * 1024 });
  let page: string | null = null;
  let client: string | null = null;
  const handleRequest = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if ((speechPaths as readonly string[]).includes(url.pathname)) {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'use POST', type: 'invalid_request_error', param: null, code: null } }));
        return true;
      }
      void speech(req, res);
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
    close() {
      closed ??= (async () => {
        server.off('upgrade', onUpgrade);
        inspector?.close();
        await engine.shutdown();
        metrics?.detach();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
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
  const attached = attachVoxline(server, options);
  server.on('request', (req, res) => {
    if (!attached.handleRequest(req, res)) json(res, 404, { error: { code: 'not_found', message: 'no such route' } });
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
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
