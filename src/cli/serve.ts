// `voxline serve`: the standalone server with the embedded voice and whatever providers the
// environment enables, pino logs, and a drain on SIGTERM/SIGINT (a second signal exits at once).
import { providersFromEnv, recognizersFromEnv } from '../config/providersFromEnv.js';
import { createListening } from '../listening/listening.js';
import { createChatModelFromEnv } from '../config/chatModelFromEnv.js';
import { createLogger, logEngine } from '../observability/engineLog.js';
import { createVoxlineServer, type VoxlineServer } from '../server/voxlineServer.js';
import type { ServeConfig } from './config.js';

const allRates = [24_000, 16_000, 22_050, 44_100, 48_000, 8_000];

export async function serve(config: ServeConfig): Promise<void> {
  const log = createLogger(config.logLevel);
  const setup = await providersFromEnv(process.env, {
    espeakWorkers: config.espeakWorkers,
    emulators: config.emulators,
    ...(config.providers ? { only: config.providers } : {}),
  });
  const limits = {
    ...(config.maxTextChars !== undefined ? { maxTextChars: config.maxTextChars } : {}),
    ...(config.maxQueued !== undefined ? { maxQueued: config.maxQueued } : {}),
  };
  // Listening (wire contract v2): PocketSphinx when Debian's packages are there, Groq Whisper with a key.
  // A VAD asked for and not installed stops the start here with its one line (cli.ts prints it).
  let listening: Awaited<ReturnType<typeof createListening>>;
  try {
    listening = await createListening({ recognizers: recognizersFromEnv(process.env), ...(config.vad ? { vad: config.vad } : {}) });
  } catch (error) {
    await setup.close();
    throw error;
  }
  // The agent turn's language model: a configured endpoint, Groq or OpenAI by key, else the echo model.
  const chat = await createChatModelFromEnv(process.env, { emulators: config.emulators });
  let created: VoxlineServer;
  try {
    created = createVoxlineServer({
      providers: setup.providers,
      ...(config.defaultVoice ? { defaultVoice: config.defaultVoice } : {}),
      ...(config.sampleRate ? { sampleRates: [config.sampleRate, ...allRates.filter((r) => r !== config.sampleRate)] } : {}),
      ...(Object.keys(limits).length > 0 ? { limits } : {}),
      ...(config.apiKeys ? { apiKeys: config.apiKeys } : {}),
      ...(config.tls ? { tls: config.tls } : {}),
      inspect: config.inspect,
      metrics: config.metrics,
      ...(listening.options ? { listen: listening.options } : {}),
      agent: { model: chat.model },
    });
  } catch (error) {
    await Promise.all([setup.close(), chat.close()]);
    throw error;
  }
  const voxline = created;
  logEngine(voxline.engine, log);
  // Signals are handled from before the server listens: a SIGTERM never finds it unprepared.
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) process.exit(130); // a second signal exits at once
    stopping = true;
    log.info({ event: 'draining', signal });
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    Promise.all([voxline.close(), setup.close(), chat.close()]).then(
      () => {
        log.info({ event: 'stopped' });
        log.flush();
        process.exit(0);
      },
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  const { url } = await voxline.listen(config.port, config.host);
  const wsUrl = `${url.replace(/^http/, 'ws')}/v1/voice`;
  log.info({ event: 'listening', url, voiceEndpoint: wsUrl, providers: setup.summary, hearing: listening.summary, agent: chat.summary, inspect: config.inspect, auth: Boolean(config.apiKeys) });
  if (!listening.options) process.stderr.write(`voxline: ${listening.summary}\n`);
  process.stdout.write(`voxline listening on ${url} (voice endpoint ${wsUrl})\n`);
  voxline.engine.ready().then(
    () => log.info({ event: 'ready', voices: voxline.engine.voices.length, defaultVoice: voxline.engine.defaultVoice }),
    (error: Error) => log.error({ event: 'not_ready', message: error.message }),
  );
}
