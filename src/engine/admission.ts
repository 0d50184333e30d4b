// Admission: who may open a session and how much each may ask for. One policy for every
// transport (the WebSocket upgrade and session.start, the HTTP speech endpoint), so no
// transport is a way around a cap. It owns the per-IP and per-key counts; every grant is a
// lease whose release is idempotent, held by whatever owns the connection or request.
import { createHash, timingSafeEqual } from 'node:crypto';
import { TokenBucket } from 'limiter';
import type { ErrorCode } from '../../machines/types.js';
import type { SharedSessionCap } from '../cluster/keySessionCap.js';
import type { SharedTextBudget } from '../cluster/textBudget.js';

/** What a cluster shares across gateways instead of counting in this process. */
export interface SharedAdmission {
  sessionCap?: SharedSessionCap;
  textBudget?: SharedTextBudget;
}

export interface AdmissionPolicy {
  /** API keys; when set, every session must present one. */
  apiKeys: string[];
  /** Concurrent sessions per API key (when keys are configured), across transports. */
  maxSessionsPerKey: number;
  /** Concurrent connections (WebSockets and speech requests) per client IP. */
  maxConnectionsPerIp: number;
  /** Browser origins allowed; a request whose `Origin` is not listed is refused. Requests without `Origin` pass. */
  allowedOrigins: string[] | null;
  /** Client frames per second a connection may send (token bucket refill)… */
  messagesPerSecond: number;
  /** …with bursts up to this many. A frame over the limit gets `rate_limited` and is dropped. */
  messageBurst: number;
  /**
   * Binary microphone frames per second of a listening session, in their own bucket so 50
   * frames a second of 20 ms audio leave the control budget whole. 10 ms frames in real time are
   * 100 a second; the session's mic gate enforces real time itself (audio_overrun).
   */
  micFramesPerSecond: number;
  /** …with bursts up to this many (a client catching up after a network stall). */
  micFrameBurst: number;
  /** Rejected frames in a row after which the connection is closed (1008): a flooder is cut off alone. */
  maxRejectedInARow: number;
  /** Characters of speak text a client may send per minute (also the burst): per connection on
   * WebSockets, per key (or per IP without keys) over HTTP. */
  textCharsPerMinute: number;
}

export const defaultAdmissionPolicy: AdmissionPolicy = {
  apiKeys: [],
  maxSessionsPerKey: 100,
  maxConnectionsPerIp: 256,
  allowedOrigins: null,
  messagesPerSecond: 50,
  messageBurst: 100,
  micFramesPerSecond: 100,
  micFrameBurst: 200,
  maxRejectedInARow: 50,
  textCharsPerMinute: 60_000,
};

/** A grant that must be given back once; giving it back again does nothing. */
export interface Lease {
  release(): void;
}

export interface Refusal {
  code: ErrorCode;
  message: string;
  /** The metrics label of a refusal before any session existed (origin, ip_cap, …). */
  reason: string;
}

export type Admitted<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

export interface AdmissionCounters {
  authFailures: number;
  rateLimited: number;
  floodCutoffs: number;
  refused: Record<string, number>;
}

/** Per-connection frame and text limits. */
export interface ConnectionLimiter {
  /** `ok`: process it; `drop`: refuse this frame; `cut`: close the connection (flood). */
  admitFrame(): 'ok' | 'drop' | 'cut';
  /** The same verdict for a binary microphone frame of a listening session (its own budget). */
  admitMicFrame(): 'ok' | 'drop' | 'cut';
  /** Whether `chars` characters of text fit this minute's budget (spends them if so). */
  admitText(chars: number): boolean;
}

/** Idle text budgets kept for HTTP clients; past this, the least recently used are forgotten. */
const maxTextBudgets = 10_000;

export class Admission {
  readonly policy: AdmissionPolicy;
  readonly counters: AdmissionCounters = { authFailures: 0, rateLimited: 0, floodCutoffs: 0, refused: {} };
  private readonly keyDigests: Buffer[];
  private readonly origins: Set<string> | null;
  private readonly perIp = new Map<string, number>();
  private readonly perKey = new Map<string, number>();
  private readonly textBudgets = new Map<string, TokenBucket>();

  /**
   * `shared`: the per-key session cap and the speech requests' text budget kept across a cluster
   * (Redis) instead of in this process; admission then waits for their answers.
   */
  constructor(
    policy: Partial<AdmissionPolicy> = {},
    private readonly shared: SharedAdmission = {},
  ) {
    this.policy = { ...defaultAdmissionPolicy, ...policy };
    this.keyDigests = this.policy.apiKeys.map(digest);
    this.origins = this.policy.allowedOrigins ? new Set(this.policy.allowedOrigins) : null;
  }

  get requiresKey(): boolean {
    return this.keyDigests.length > 0;
  }

  /** A connection or request from `ip` with this `Origin` header: Origin allowlist, then the per-IP cap. */
  admitConnection(ip: string, origin: string | undefined): Admitted<Lease> {
    if (this.origins && origin !== undefined && !this.origins.has(origin)) {
      return this.refuse({ code: 'forbidden_origin', message: 'this Origin may not open sessions', reason: 'origin' });
    }
    const open = this.perIp.get(ip) ?? 0;
    if (open >= this.policy.maxConnectionsPerIp) {
      return this.refuse({ code: 'too_many_connections', message: `over ${this.policy.maxConnectionsPerIp} connections from this address`, reason: 'ip_cap' });
    }
    this.perIp.set(ip, open + 1);
    return { ok: true, value: once(() => decrement(this.perIp, ip)) };
  }

  /** Whether `token` is accepted (always true when no API keys are configured). Constant time. */
  authorized(token: string | undefined): boolean {
    if (this.keyDigests.length === 0) return true;
    if (token === undefined) return false;
    const d = digest(token);
    // Compare fixed-length digests in constant time; check every key so timing does not tell which matched.
    let ok = false;
    for (const key of this.keyDigests) ok = timingSafeEqual(d, key) || ok;
    return ok;
  }

  /**
   * A session presenting `token`: the key check, then the per-key session cap. Synchronous
   * unless the cap is shared across a cluster (then the answer comes from Redis).
   */
  admitSession(token: string | undefined): Admitted<Lease> | Promise<Admitted<Lease>> {
    if (!this.authorized(token)) {
      this.counters.authFailures++;
      return { ok: false, refusal: { code: 'unauthorized', message: 'a valid API key is required', reason: 'unauthorized' } };
    }
    if (!this.requiresKey || token === undefined) return { ok: true, value: noLease };
    return this.admitKey(digest(token).toString('hex'));
  }

  /** A place under key `keyId`'s session cap (the cluster's, when shared). */
  private admitKey(keyId: string): Admitted<Lease> | Promise<Admitted<Lease>> {
    if (this.shared.sessionCap) return this.admitShared(keyId);
    const open = this.perKey.get(keyId) ?? 0;
    if (open >= this.policy.maxSessionsPerKey) {
      return { ok: false, refusal: { code: 'too_many_sessions', message: `this key already has ${open} open sessions`, reason: 'key_cap' } };
    }
    this.perKey.set(keyId, open + 1);
    return { ok: true, value: once(() => decrement(this.perKey, keyId)) };
  }

  /** The name of `token`'s key under the per-key cap (null: keys are not required, or none was given). */
  keyIdOf(token: string | undefined): string | null {
    return this.requiresKey && token !== undefined ? digest(token).toString('hex') : null;
  }

  /**
   * A session taken over from a dead gateway: its key was checked when it started; it takes a
   * place under its key's cap here (the dead gateway's place expires with its lease).
   */
  async admitMovedSession(keyId: string | null): Promise<Admitted<Lease>> {
    return keyId === null ? { ok: true, value: noLease } : this.admitKey(keyId);
  }

  private async admitShared(keyId: string): Promise<Admitted<Lease>> {
    const max = this.policy.maxSessionsPerKey;
    let lease: Lease | null;
    try {
      lease = await this.shared.sessionCap!.acquire(keyId, max);
    } catch {
      // Fail closed: without the cluster's count a key could open any number of sessions.
      return { ok: false, refusal: { code: 'internal', message: 'the session cap cannot be checked now; try again', reason: 'cap_unavailable' } };
    }
    if (!lease) return { ok: false, refusal: { code: 'too_many_sessions', message: `this key already has ${max} open sessions`, reason: 'key_cap' } };
    return { ok: true, value: lease };
  }

  /** The frame and text limits of one WebSocket connection: one client's flood never spends another's budget. */
  connectionLimiter(): ConnectionLimiter {
    const frames = fullBucket(this.policy.messageBurst, this.policy.messagesPerSecond, 'second');
    const text = fullBucket(this.policy.textCharsPerMinute, this.policy.textCharsPerMinute, 'minute');
    // Made with the first microphone frame: a session that never listens pays nothing for it.
    let mic: TokenBucket | null = null;
    let rejectedInARow = 0;
    const admit = (bucket: TokenBucket): 'ok' | 'drop' | 'cut' => {
      if (bucket.tryRemoveTokens(1)) {
        rejectedInARow = 0;
        return 'ok';
      }
      this.counters.rateLimited++;
      if (++rejectedInARow >= this.policy.maxRejectedInARow) {
        this.counters.floodCutoffs++;
        return 'cut';
      }
      return 'drop';
    };
    return {
      admitFrame: () => admit(frames),
      admitMicFrame: () => admit((mic ??= fullBucket(this.policy.micFrameBurst, this.policy.micFramesPerSecond, 'second'))),
      admitText: (chars) => this.spend(text, chars),
    };
  }

  /** Spend `chars` of the text budget of an HTTP client (its key, or its IP without keys); cluster-wide when shared. */
  admitRequestText(client: string, chars: number): boolean | Promise<boolean> {
    if (this.shared.textBudget) {
      return this.shared.textBudget.spend(client, chars).then((ok) => {
        if (!ok) this.counters.rateLimited++;
        return ok;
      });
    }
    let bucket = this.textBudgets.get(client);
    if (bucket) this.textBudgets.delete(client); // re-inserted below: most recently used last
    else bucket = fullBucket(this.policy.textCharsPerMinute, this.policy.textCharsPerMinute, 'minute');
    this.textBudgets.set(client, bucket);
    while (this.textBudgets.size > maxTextBudgets) this.textBudgets.delete(this.textBudgets.keys().next().value!);
    return this.spend(bucket, chars);
  }

  /** The text-budget identity of a request: its key's digest when keys are configured, else its IP. */
  clientOf(ip: string, token: string | undefined): string {
    return this.requiresKey && token !== undefined ? `key:${digest(token).toString('hex')}` : `ip:${ip}`;
  }

  /** Count a connection refused before it became a session (for metrics). */
  countRefusal(reason: string): void {
    this.counters.refused[reason] = (this.counters.refused[reason] ?? 0) + 1;
  }

  private spend(bucket: TokenBucket, chars: number): boolean {
    if (bucket.tryRemoveTokens(Math.max(1, chars))) return true;
    this.counters.rateLimited++;
    return false;
  }

  private refuse(refusal: Refusal): Admitted<Lease> {
    this.countRefusal(refusal.reason);
    return { ok: false, refusal };
  }
}

const noLease: Lease = { release() {} };

function once(release: () => void): Lease {
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      release();
    },
  };
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

function fullBucket(size: number, perInterval: number, interval: 'second' | 'minute'): TokenBucket {
  const bucket = new TokenBucket({ bucketSize: size, tokensPerInterval: perInterval, interval });
  bucket.content = size; // limiter's buckets start empty; a new client starts with its full burst
  return bucket;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
