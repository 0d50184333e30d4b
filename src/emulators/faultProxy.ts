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
  from: Socket;
  to: Socket;
  /** Chunks in flight, in order, each with its delivery time (ms, performance clock). */
  queue: { chunk: Buffer; at: number }[];
  /** Bytes in flight: above the high mark the source is paused, like a full TCP window. */
  queued: number;
  /** When the last scheduled chunk of this direction is delivered. */
  busyUntil: number;
  /** One timer per lane, for the head of the queue: delivery order is the arrival order. */
  timer: NodeJS.Timeout | null;
}

export class FaultProxy {
  private readonly server: Server;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket; lanes: Lane[] }>();
  /** Pairs one side of which closed while the blackhole was on: the other side has not heard yet. */
  private readonly unheardCloses = new Set<() => void>();
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
    if (this.faults.blackhole) return;
    // The network is back: closes it swallowed reach the other side now.
    for (const teardown of [...this.unheardCloses]) teardown();
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
    this.unheardCloses.clear();
    this.resetAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = createConnection(this.target);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const lanes: Lane[] = [
      { from: client, to: upstream, queue: [], queued: 0, busyUntil: 0, timer: null },
      { from: upstream, to: client, queue: [], queued: 0, busyUntil: 0, timer: null },
    ];
    const pair = { client, upstream, lanes };
    this.pairs.add(pair);
    client.on('data', (chunk: Buffer) => this.forward(lanes[0]!, chunk));
    upstream.on('data', (chunk: Buffer) => this.forward(lanes[1]!, chunk));
    const teardown = () => {
      // A blackholed network does not carry a close (FIN or RST) either: the other side stays open.
      if (this.faults.blackhole && client.destroyed !== upstream.destroyed) {
        this.unheardCloses.add(teardown);
        return;
      }
      this.unheardCloses.delete(teardown);
      if (!this.pairs.delete(pair)) return;
      for (const lane of lanes) if (lane.timer) clearTimeout(lane.timer);
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
    if (latencyMs === 0 && jitterMs === 0 && bytesPerSecond === 0 && lane.queue.length === 0) {
      lane.to.write(chunk);
      return;
    }
    const now = performance.now();
    const delay = Math.max(0, latencyMs + (Math.random() * 2 - 1) * jitterMs);
    // Under a bandwidth cap, deliver in segments so the data trickles rather than jumps.
    const segment = bytesPerSecond > 0 ? 4096 : chunk.length;
    for (let offset = 0; offset < chunk.length; offset += segment) {
      const piece = chunk.subarray(offset, offset + segment);
      const transmit = bytesPerSecond > 0 ? (piece.length / bytesPerSecond) * 1000 : 0;
      // Never before the previous piece of this direction: TCP delivers in order.
      const at = Math.max(now + delay, lane.busyUntil) + transmit;
      lane.busyUntil = at;
      lane.queue.push({ chunk: piece, at });
      lane.queued += piece.length;
    }
    if (lane.queued > 64 * 1024) lane.from.pause();
    if (!lane.timer) this.arm(lane);
  }

  private arm(lane: Lane): void {
    const head = lane.queue[0];
    if (!head) return;
    lane.timer = setTimeout(() => {
      lane.timer = null;
      const now = performance.now();
      while (lane.queue.length > 0 && lane.queue[0]!.at <= now + 0.5) {
        const { chunk } = lane.queue.shift()!;
        lane.queued -= chunk.length;
        if (!lane.to.destroyed && !this.faults.blackhole) lane.to.write(chunk);
      }
      if (lane.queued < 16 * 1024 && lane.from.isPaused()) lane.from.resume();
      this.arm(lane);
    }, Math.max(0, head.at - performance.now()));
  }
}
