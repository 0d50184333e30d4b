// Where each resumable session of a cluster lives: one Redis key per session naming the voice
// endpoint of the gateway that owns it (its actors, its outbound log). A client that resumes on
// another gateway is relayed to the owner (src/cluster/relay.ts), which honours the resume as in
// one process; if the owner is gone, the gateway takes the session over (src/engine/sessionMove.ts). Each gateway keeps its sessions' keys alive on a timer, so the keys of a gateway
// that died expire by themselves; a session that ends deletes its key at once.
import type { Redis } from './redis.js';

// Compare-and-set and compare-and-delete: a gateway only ever writes or deletes its own record,
// so one that lost a session to another (which took it over) never points the cluster back at itself.
// KEYS[1] the record; ARGV: this gateway's endpoint, ttl ('' to delete).
const ownScript = `
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1
`;

/** The engine's view of the directory (synchronous: writes go out in the background). */
export interface SessionDirectory {
  /** This gateway's voice endpoint (ws://…/v1/voice), once it listens. */
  readonly self: string | null;
  /** This gateway owns `sessionId` now (a resumable session). */
  add(sessionId: string): void;
  /** The session ended. */
  remove(sessionId: string): void;
  /** The voice endpoint of the gateway owning `sessionId`, or null. Throws when the store cannot answer. */
  ownerOf(sessionId: string): Promise<string | null>;
}

export interface RedisSessionDirectoryOptions {
  /** A record lives this long without a refresh (a dead gateway's records are gone after it). */
  ttlMs?: number;
  prefix?: string;
}

export class RedisSessionDirectory implements SessionDirectory {
  private url: string | null = null;
  private readonly owned = new Set<string>();
  private readonly ttlMs: number;
  private readonly prefix: string;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly redis: Redis,
    options: RedisSessionDirectoryOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 15_000;
    this.prefix = options.prefix ?? 'voxline';
    this.timer = setInterval(() => void this.refresh(), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  /** Sessions this gateway owns now. */
  get ownedCount(): number {
    return this.owned.size;
  }

  get self(): string | null {
    return this.url;
  }

  /** Say where this gateway's voice endpoint is (after it listens). */
  advertise(url: string): void {
    this.url = url;
  }

  add(sessionId: string): void {
    if (!this.url) return;
    this.owned.add(sessionId);
    // Taken (SET, not compare): a new session, or one this gateway just took over from a dead one.
    // Best effort: a record that fails to land now is written by the next refresh.
    this.redis.set(this.key(sessionId), this.url, 'PX', this.ttlMs).catch(() => {});
  }

  remove(sessionId: string): void {
    if (!this.owned.delete(sessionId) || !this.url) return;
    this.redis.eval(ownScript, 1, this.key(sessionId), this.url, '').catch(() => {});
  }

  async ownerOf(sessionId: string): Promise<string | null> {
    return this.redis.get(this.key(sessionId));
  }

  /** Stop refreshing and delete this gateway's records. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const ids = [...this.owned];
    this.owned.clear();
    if (!this.url || ids.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.eval(ownScript, 1, this.key(id), this.url, '');
    await pipeline.exec().catch(() => null);
  }

  private key(sessionId: string): string {
    return `${this.prefix}:session:${sessionId}`;
  }

  private async refresh(): Promise<void> {
    if (!this.url || this.owned.size === 0) return;
    const ids = [...this.owned];
    for (let i = 0; i < ids.length; i += 500) {
      const pipeline = this.redis.pipeline();
      // Written again if Redis lost it (a restart), never over another gateway's.
      for (const id of ids.slice(i, i + 500)) pipeline.eval(ownScript, 1, this.key(id), this.url, this.ttlMs);
      await pipeline.exec().catch(() => null);
    }
  }
}
