// `npm start`: the standalone server. The embedded offline voice always; Groq and
// ElevenLabs when their keys are set (or local emulators with VOXLINE_EMULATORS=1).
import { ConfigError, providersFromEnv } from './config/providersFromEnv.js';
import { createLogger, logEngine } from './observability/engineLog.js';
import { createVoxlineServer } from './server/voxlineServer.js';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const fail = (message: string, code = 2): never => {
  process.stderr.write(`voxline: ${message}\n`);
  process.exit(code);
};
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`PORT must be a port number, got "${process.env.PORT}"`);
const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const level = (process.env.LOG_LEVEL ?? 'info') as (typeof levels)[number];
if (!levels.includes(level)) fail(`LOG_LEVEL must be one of ${levels.join(', ')}, got "${process.env.LOG_LEVEL}"`);
const log = createLogger(level);

const setup = await providersFromEnv(process.env).catch((error: unknown) =>
  fail(error instanceof ConfigError ? error.message : `cannot set up providers: ${(error as Error).message}`),
);
let voxline: ReturnType<typeof createVoxlineServer>;
try {
  voxline = createVoxlineServer({
    providers: setup.providers,
    ...(process.env.VOXLINE_DEFAULT_VOICE ? { defaultVoice: process.env.VOXLINE_DEFAULT_VOICE } : {}),
  });
} catch (error) {
  fail((error as Error).message);
}
logEngine(voxline!.engine, log);
try {
  const { url } = await voxline!.listen(port, host);
  log.info({ event: 'listening', url, voiceEndpoint: `${url.replace('http', 'ws')}/v1/voice`, providers: setup.summary });
  process.stdout.write(`voxline listening on ${url} (voice endpoint ${url.replace('http', 'ws')}/v1/voice)\n`);
} catch (error) {
  fail(`cannot listen on ${host}:${port}: ${(error as Error).message}`, 1);
}
voxline!.engine.ready().then(
  () => log.info({ event: 'ready', voices: voxline.engine.voices.length, defaultVoice: voxline.engine.defaultVoice }),
  (error: Error) => log.error({ event: 'not_ready', message: error.message }),
);

let stopping = false;
const onSignal = (signal: string) => {
  if (stopping) process.exit(130); // a second signal exits at once
  stopping = true;
  log.info({ event: 'draining', signal });
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  Promise.all([voxline.close(), setup.close()]).then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', () => onSignal('SIGTERM'));
process.on('SIGINT', () => onSignal('SIGINT'));
