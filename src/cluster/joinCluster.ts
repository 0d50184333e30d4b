// Everything a gateway shares with its cluster through Redis, made in one place for the CLI and
// for embedders: the per-key session cap, the directory of resumable sessions and their records.
import { defaultAdmissionPolicy } from '../engine/admission.js';
import { RedisSessionCap } from './keySessionCap.js';
import { connectRedis, type Redis } from './redis.js';
import { RedisSessionDirectory } from './sessionDirectory.js';
import { RedisSessionStore } from './sessionStore.js';
import { redisTextBudget, type SharedTextBudget } from './textBudget.js';

export interface ClusterMembership {
  redis: Redis;
  sessionCap: RedisSessionCap;
  sessionDirectory: RedisSessionDirectory;
  /** Records of resumable sessions, so another gateway can take one over when its gateway dies. */
  sessionStore: RedisSessionStore;
  textBudget: SharedTextBudget;
  /** Tell the cluster where this gateway's voice endpoint is (once it listens). */
  advertise(voiceUrl: string): void;
  /** Give back every lease and record of this gateway and disconnect. */
  close(): Promise<void>;
}

export interface ClusterOptions {
  redisUrl: string;
  /** Leases and directory records live this long without a refresh (a dead gateway's expire after it). */
  leaseMs?: number;
  prefix?: string;
  /** The speech requests' text budget per key per minute (the admission policy's textCharsPerMinute). */
  textCharsPerMinute?: number;
}

export async function joinCluster(options: ClusterOptions): Promise<ClusterMembership> {
  const redis = await connectRedis(options.redisUrl);
  const shared = { ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs, ttlMs: options.leaseMs } : {}), ...(options.prefix ? { prefix: options.prefix } : {}) };
  const sessionCap = new RedisSessionCap(redis, shared);
  const sessionDirectory = new RedisSessionDirectory(redis, shared);
  const sessionStore = new RedisSessionStore(redis, { ...shared, self: () => sessionDirectory.self });
  return {
    redis,
    sessionCap,
    sessionDirectory,
    sessionStore,
    textBudget: redisTextBudget(redis, options.textCharsPerMinute ?? defaultAdmissionPolicy.textCharsPerMinute, options.prefix),
    advertise: (url) => sessionDirectory.advertise(url),
    async close() {
      sessionStore.close();
      await Promise.all([sessionCap.close(), sessionDirectory.close()]);
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
