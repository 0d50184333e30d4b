// The per-key text budget of speech requests across a cluster: rate-limiter-flexible's Redis
// limiter (one atomic INCR-with-expiry script per request, a fixed one-minute window per key),
// with an in-process limiter as its insurance, so a Redis that is away makes each gateway count
// on its own for a while instead of refusing every request or letting every one through.
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Redis } from './redis.js';

/** Characters of text a client (its key, or its IP without keys) may send per minute, cluster-wide. */
export interface SharedTextBudget {
  /** Spend `chars` of `client`'s budget: false when it is spent. */
  spend(client: string, chars: number): Promise<boolean>;
}

export function redisTextBudget(redis: Redis, charsPerMinute: number, prefix = 'voxline'): SharedTextBudget {
  const limiter = new RateLimiterRedis({
    storeClient: redis,
    keyPrefix: `${prefix}:text`,
    points: charsPerMinute,
    duration: 60,
    insuranceLimiter: new RateLimiterMemory({ points: charsPerMinute, duration: 60 }),
  });
  return {
    async spend(client, chars) {
      try {
        await limiter.consume(client, Math.max(1, Math.ceil(chars)));
        return true;
      } catch (error) {
        if (error instanceof RateLimiterRes) return false;
        throw error;
      }
    },
  };
}
