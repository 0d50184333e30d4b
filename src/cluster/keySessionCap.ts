// The per-key session cap across every gateway of a cluster: one sorted set per API key in
// Redis, a member per session (a lease) scored by when it expires on Redis's own clock (TIME,
// so gateways' clocks never matter). Taking a place is one Lua script (drop expired leases,
// count, add if under the cap): atomic, so two gateways can never both take the last place.
// Each gateway refreshes its leases on a timer; a gateway that dies stops refreshing, and its
// places come back by themselves once their leases expire. The set itself expires with its
// last lease, so nothing outlives the sessions it counts.
import { randomUUID } from 'node:crypto';
import type { Lease } from '../engine/admission.js';
import type { Redis } from './redis.js';

/** Where the per-key cap is kept when it is shared (the in-process count needs none of this). */
export interface SharedSessionCap {
  /** A place for `keyId` if fewer than `max` are held across the cluster; null when full. Throws when the store cannot answer. */
  acquire(keyId: string, max: number): Promise<Lease | null>;
  /** Stop refreshing and give back every lease this process holds. */
  close(): Promise<void>;
}

export interface RedisSessionCapOptions {
  /** How long a lease lives without a refresh: a dead gateway's places return after at most this. */
  leaseMs?: number;
  /** Key prefix (one deployment per prefix). */
  prefix?: string;
}

// KEYS[1] the key's set; ARGV: member, max, leaseMs. Returns 1 when the place was taken.
const acquireScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`;

// KEYS: sets; ARGV[1] leaseMs, ARGV[2..] members (one per key). Extends each lease, and puts
// back one Redis lost (restarted without persistence, or a lease that lapsed while this gateway
// was stalled): the session it counts is still alive, so it still counts, even over the cap.
const refreshScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local kept = 0
for i, key in ipairs(KEYS) do
  kept = kept + redis.call('ZADD', key, 'CH', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease)
end
return kept
`;

export class RedisSessionCap implements SharedSessionCap {
  private readonly leaseMs: number;
  private readonly prefix: string;
  /** Leases this process holds: member → its set's key. */
  private readonly held = new Map<string, string>();
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly owner = randomUUID();
  private next = 0;

  constructor(
    private readonly redis: Redis,
    options: RedisSessionCapOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? 15_000;
    this.prefix = options.prefix ?? 'voxline';
    // Three refreshes per lease: one lost to a slow Redis still leaves the lease alive.
    this.timer = setInterval(() => void this.refresh(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  async acquire(keyId: string, max: number): Promise<Lease | null> {
    const key = `${this.prefix}:cap:${keyId}`;
    const member = `${this.owner}:${this.next++}`;
    const taken = (await this.redis.eval(acquireScript, 1, key, member, max, this.leaseMs)) === 1;
    if (!taken) return null;
    this.held.set(member, key);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.held.delete(member);
        // Best effort: if Redis cannot hear it now, the lease expires by itself.
        this.redis.zrem(key, member).catch(() => {});
      },
    };
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const leases = [...this.held];
    this.held.clear();
    await Promise.all(leases.map(([member, key]) => this.redis.zrem(key, member).catch(() => 0)));
  }

  private async refresh(): Promise<void> {
    if (this.held.size === 0) return;
    // In batches: one script call per 500 leases keeps each call short for Redis.
    const leases = [...this.held];
    for (let i = 0; i < leases.length; i += 500) {
      const batch = leases.slice(i, i + 500);
      try {
        await this.redis.eval(refreshScript, batch.length, ...batch.map(([, key]) => key), this.leaseMs, ...batch.map(([member]) => member));
      } catch {
        // Redis unreachable: the next tick tries again; leases that lapse meanwhile free their places.
      }
    }
  }
}
