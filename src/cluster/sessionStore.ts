// The records of a cluster's resumable sessions, in Redis (see src/engine/sessionMove.ts for why
// a record holds inputs and ends, never audio). One hash per session:
//
//   epoch      the fencing number: which owner may write (every write checks it, in Lua)
//   owner      the owning gateway's voice endpoint
//   digest     SHA-256 of the resume token (never the token)
//   settings   what recreates the session (JSON)
//   u:<s>      utterance of stream s: id, voice, final (JSON)
//   t:<s>      its text, appends included
//   f:<s>      its text became final by an append
//   e:<s>      its end: the speak.end message and the last seq sent (JSON)
//   conversation  the agent's conversation, what was said and heard (JSON, bounded by its limits)
//
// The owner writes in the background, in order, on the shared connection (one round trip is
// never waited for on the audio path). A record lives the resume window plus the lease after
// its last write or refresh, so a dead owner's sessions can be taken over for a whole window,
// and nothing of a session outlives it. Ended utterances leave the record once they are older
// than the window (no resume can need them then).
import { timingSafeEqual } from 'node:crypto';
import type { JobFence } from '../providers/types.js';
import type { Adoption, MovableSettings, RecordedUtterance, SessionRecorder, SessionStore, SpeakEndMessage } from '../engine/sessionMove.js';
import type { Redis } from './redis.js';

// KEYS[1] the record; ARGV: epoch, ttl, op, then fields (op 'set': field/value pairs; 'append':
// field, text; 'hdel': fields; 'touch', 'del': none). 0: fenced (another owner, or gone).
const writeScript = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
local op = ARGV[3]
if op == 'del' then redis.call('DEL', KEYS[1]) return 1 end
if op == 'set' then
  for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
elseif op == 'append' then
  local text = redis.call('HGET', KEYS[1], ARGV[4]) or ''
  redis.call('HSET', KEYS[1], ARGV[4], text .. ARGV[5])
elseif op == 'hdel' then
  for i = 4, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

// KEYS[1] the record; ARGV: the epoch read, the new owner, ttl. The new epoch, or 0 if another
// gateway took it meanwhile.
const adoptScript = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return epoch
`;

type Fenced = Redis & {
  recordWrite(key: string, epoch: number, ttl: number, op: string, ...args: Array<string | number>): Promise<number>;
  recordAdopt(key: string, epoch: string, owner: string, ttl: number): Promise<number>;
};

export interface RedisSessionStoreOptions {
  prefix?: string;
  /** How long a dead owner's record outlives it beyond the window (the directory's lease). */
  leaseMs?: number;
  /** This gateway's voice endpoint, once it listens (recorded as the owner). */
  self: () => string | null;
}

export class RedisSessionStore implements SessionStore {
  private readonly redis: Fenced;
  private readonly prefix: string;
  private readonly leaseMs: number;
  private readonly live = new Set<RedisRecorder>();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    redis: Redis,
    private readonly options: RedisSessionStoreOptions,
  ) {
    this.prefix = options.prefix ?? 'voxline';
    this.leaseMs = options.leaseMs ?? 15_000;
    this.redis = redis as Fenced;
    if (!('recordWrite' in redis)) {
      redis.defineCommand('recordWrite', { numberOfKeys: 1, lua: writeScript });
      redis.defineCommand('recordAdopt', { numberOfKeys: 1, lua: adoptScript });
    }
    // Keeps live records from expiring, trims old ends, and finds out about fencing of idle ones.
    this.timer = setInterval(() => {
      for (const recorder of this.live) recorder.refresh();
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  key(sessionId: string): string {
    return `${this.prefix}:record:${sessionId}`;
  }

  create(sessionId: string, tokenDigest: Buffer, settings: MovableSettings, onFenced: () => void): SessionRecorder {
    const key = this.key(sessionId);
    const ttl = settings.windowMs + this.leaseMs;
    // A new session id (random): nothing to fence against yet.
    this.redis
      .multi()
      .hset(key, 'epoch', '1', 'owner', this.options.self() ?? '', 'digest', tokenDigest.toString('hex'), 'settings', JSON.stringify(settings))
      .pexpire(key, ttl)
      .exec()
      .catch(() => {});
    return this.track(new RedisRecorder(this.redis, key, 1, ttl, settings.windowMs, onFenced, (r) => this.live.delete(r)));
  }

  async adopt(sessionId: string, tokenDigest: Buffer, onFenced: () => void): Promise<Adoption> {
    const key = this.key(sessionId);
    let fields: Record<string, string>;
    try {
      fields = await this.redis.hgetall(key);
    } catch (error) {
      return { ok: false, reason: 'unavailable', message: `the session store cannot be reached (${(error as Error).message})` };
    }
    if (!fields.epoch || !fields.digest || !fields.settings) return { ok: false, reason: 'unknown_session', message: 'no such session (unknown, ended or its window ran out)' };
    const stored = Buffer.from(fields.digest, 'hex');
    if (stored.length !== tokenDigest.length || !timingSafeEqual(stored, tokenDigest)) return { ok: false, reason: 'wrong_token', message: 'the resume token does not match' };
    let settings: MovableSettings;
    try {
      settings = JSON.parse(fields.settings) as MovableSettings;
    } catch {
      return { ok: false, reason: 'unknown_session', message: 'the session record is unreadable' };
    }
    const ttl = settings.windowMs + this.leaseMs;
    let epoch: number;
    try {
      epoch = await this.redis.recordAdopt(key, fields.epoch, this.options.self() ?? '', ttl);
    } catch (error) {
      return { ok: false, reason: 'unavailable', message: `the session store cannot be reached (${(error as Error).message})` };
    }
    if (!epoch) return { ok: false, reason: 'unavailable', message: 'another gateway is taking this session over; try again' };
    const utterances = utterancesOf(fields);
    const recorder = this.track(new RedisRecorder(this.redis, key, epoch, ttl, settings.windowMs, onFenced, (r) => this.live.delete(r)));
    for (const u of utterances) recorder.known(u);
    let conversation: unknown;
    try {
      conversation = fields.conversation ? JSON.parse(fields.conversation) : undefined;
    } catch {
      conversation = undefined; // damaged: the agent starts without its history
    }
    return { ok: true, session: { sessionId, settings, utterances, ...(conversation !== undefined ? { conversation } : {}) }, recorder };
  }

  /** Stop refreshing (the gateway is closing; its records expire or are taken over). */
  close(): void {
    clearInterval(this.timer);
    this.live.clear();
  }

  private track(recorder: RedisRecorder): RedisRecorder {
    this.live.add(recorder);
    return recorder;
  }
}

function utterancesOf(fields: Record<string, string>): RecordedUtterance[] {
  const utterances: RecordedUtterance[] = [];
  for (const [field, value] of Object.entries(fields)) {
    if (!field.startsWith('u:')) continue;
    const stream = Number(field.slice(2));
    try {
      const head = JSON.parse(value) as { id: string; voice?: string; final: boolean };
      const end = fields[`e:${stream}`];
      utterances.push({
        stream,
        id: head.id,
        text: fields[`t:${stream}`] ?? '',
        ...(head.voice !== undefined ? { voice: head.voice } : {}),
        final: head.final || fields[`f:${stream}`] === '1',
        ...(end ? { end: JSON.parse(end) as { message: SpeakEndMessage; lastSeq: number } } : {}),
      });
    } catch {
      /* a damaged entry: the planner then refuses a cursor that needs it (frames_gone) */
    }
  }
  return utterances.sort((a, b) => a.stream - b.stream);
}

class RedisRecorder implements SessionRecorder {
  private released = false;
  private fenced = false;
  /** Ended streams and when, to drop them from the record once no resume can need them. */
  private readonly endedAt: Array<{ stream: number; at: number }> = [];
  /** Per stream still open: the last audio seq sent (its end records it). */
  private readonly lastSeq = new Map<number, number>();
  readonly fence: JobFence;

  constructor(
    private readonly redis: Fenced,
    private readonly key: string,
    private readonly epoch: number,
    private readonly ttl: number,
    private readonly windowMs: number,
    private readonly onFenced: () => void,
    private readonly untrack: (r: RedisRecorder) => void,
  ) {
    this.fence = { key, epoch };
  }

  /** An utterance the record already holds (taken over): its end ages out like ours. */
  known(u: RecordedUtterance): void {
    if (u.end) this.endedAt.push({ stream: u.stream, at: Date.now() });
  }

  accepted(u: { stream: number; id: string; text: string; voice: string; final: boolean }): void {
    this.write('set', `u:${u.stream}`, JSON.stringify({ id: u.id, voice: u.voice, final: u.final }), `t:${u.stream}`, u.text);
  }

  appended(stream: number, text: string, final: boolean): void {
    this.write('append', `t:${stream}`, text);
    if (final) this.write('set', `f:${stream}`, '1');
  }

  sent(stream: number, seq: number): void {
    this.lastSeq.set(stream, seq);
  }

  ended(stream: number, message: SpeakEndMessage): void {
    const lastSeq = this.lastSeq.get(stream) ?? -1;
    this.lastSeq.delete(stream);
    this.write('set', `e:${stream}`, JSON.stringify({ message, lastSeq }));
    this.endedAt.push({ stream, at: Date.now() });
  }

  remembered(conversation: unknown): void {
    this.write('set', 'conversation', JSON.stringify(conversation));
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.untrack(this);
    if (!this.fenced) this.write('del', true);
  }

  abandon(): void {
    if (this.released) return;
    this.released = true;
    this.fenced = true;
    this.untrack(this);
  }

  refresh(): void {
    const oldest = Date.now() - this.windowMs;
    const gone: string[] = [];
    while (this.endedAt.length > 0 && this.endedAt[0]!.at < oldest) {
      const { stream } = this.endedAt.shift()!;
      gone.push(`u:${stream}`, `t:${stream}`, `f:${stream}`, `e:${stream}`);
    }
    if (gone.length > 0) this.write('hdel', ...gone);
    else this.write('touch');
  }

  private write(op: string, ...args: Array<string | true>): void {
    if (this.fenced || (this.released && op !== 'del')) return;
    const fields = args.filter((a): a is string => a !== true);
    this.redis.recordWrite(this.key, this.epoch, this.ttl, op, ...fields).then(
      (ok) => {
        if (ok === 1 || this.fenced) return;
        // Another gateway took the session over (or its record expired): this owner lets go.
        this.fenced = true;
        this.untrack(this);
        if (!this.released) this.onFenced();
      },
      () => {
        /* Redis away: the record may lag; a move then refuses what it cannot prove (frames_gone) */
      },
    );
  }
}
