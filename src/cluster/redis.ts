// The Redis connection of a cluster member (`voxline serve --redis …`). ioredis is imported here
// only, and this module only dynamically (src/cli/serve.ts), so a single process never loads it.
// Every command has a deadline (commandTimeout) and fails at once while disconnected (no offline
// queue): a caller gets an error it turns into a typed refusal, never a wait without end.
import { Redis } from 'ioredis';

export type { Redis };

export interface RedisConnectOptions {
  /** Deadline of the first connection (ms). */
  connectTimeoutMs?: number;
  /** Deadline of each command (ms). */
  commandTimeoutMs?: number;
}

/** Connect to `url` (redis://host:port[/db]) within the deadline, or throw one clear error. */
export async function connectRedis(url: string, options: RedisConnectOptions = {}): Promise<Redis> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--redis must be a redis:// URL, got "${url}"`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new Error(`--redis must be a redis:// or rediss:// URL, got "${url}"`);
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 3_000,
    commandTimeout: options.commandTimeoutMs ?? 1_000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // Reconnect with a capped backoff for as long as the process lives: Redis may restart.
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
  });
  redis.on('error', () => {
    /* reported through the failing commands; an unhandled 'error' event would crash the process */
  });
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${parsed.host} (${(error as Error).message})`);
  }
  return redis;
}
