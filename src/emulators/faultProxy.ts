// A TCP fault proxy on 127.0.0.1 (this kernel has no netem and npm has no toxiproxy): put it
// between two real parties and switch faults on the live connections: added latency with
// jitter (order kept), a bandwidth cap, a blackhole (stop forwarding but keep both sockets
// open: a half-open connection), and reset (RST on every connection).
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface ProxyFaults {
  latencyMs: number;
  jitterMs: number;
  /** Bytes per second in each direction; 0 = no cap. */
  bytesPerSecond: number;
  /** Forward nothing (data is dropped), keep the sockets open. */
  blackhole: boolean;
}

interface Lane {
  to: Socket;
  /** When the last scheduled chunk of this direction is delivered (ms, performance clock). */
  busyUntil: number;
  timers: Set<NodeJS.Timeout>;
}

export class FaultProxy {
  private readonly server: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket; lanes: Lane[] }>();
  faults: ProxyFaults = { latencyMs: 0, jitterMs: 0, bytesPerSecond: 0, blackhole: false };
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.accept(client));
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  set(faults: Partial<ProxyFaults>): void {
    this.faults = { ...this.faults, ...faults };
  }

  /** Open proxied connections. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Tear every connection down with a TCP reset, both sides. */
  resetAll(): void {
    for (const pair of [...this.pairs]) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
    }
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = createConnection(this.target);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const lanes: Lane[] = [
      { to: upstream, busyUntil: 0, timers: new Set() },
      { to: client, busyUntil: 0, timers: new Set() },
    ];
    const pair = { client, upstream, lanes };
    this.pairs.add(pair);
    client.on('data', (chunk: Buffer) => this.forward(lanes[0]!, chunk));
    upstream.on('data', (chunk: Buffer) => this.forward(lanes[1]!, chunk));
    const teardown = () => {
      if (!this.pairs.delete(pair)) return;
      for (const lane of lanes) for (const t of lane.timers) clearTimeout(t);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', teardown);
      s.on('close', teardown);
    }
  }

  private forward(lane: Lane, chunk: Buffer): void {
    const { latencyMs, jitterMs, bytesPerSecond, blackhole } = this.faults;
    if (blackhole) return;
    if (latencyMs === 0 && jitterMs === 0 && bytesPerSecond === 0 && lane.timers.size === 0) {
      lane.to.write(chunk);
      return;
    }
    const now = performance.now();
    const delay = Math.max(0, latencyMs + (Math.random() * 2 - 1) * jitterMs);
    const transmit = bytesPerSecond > 0 ? (chunk.length / bytesPerSecond) * 1000 : 0;
    // Never before the previous chunk of this direction: TCP delivers in order.
    const at = Math.max(now + delay, lane.busyUntil) + transmit;
    lane.busyUntil = at;
    const timer = setTimeout(() => {
      lane.timers.delete(timer);
      if (!lane.to.destroyed && !this.faults.blackhole) lane.to.write(chunk);
    }, at - now);
    lane.timers.add(timer);
  }
}
