// `npm start`: the standalone server with the embedded offline voice.
import { createVoxlineServer } from './server/voxlineServer.js';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`voxline: PORT must be a port number, got "${process.env.PORT}"\n`);
  process.exit(2);
}

const voxline = createVoxlineServer();
try {
  const { url } = await voxline.listen(port, host);
  process.stdout.write(`voxline listening on ${url} (voice endpoint ${url.replace('http', 'ws')}/v1/voice)\n`);
} catch (error) {
  process.stderr.write(`voxline: cannot listen on ${host}:${port}: ${(error as Error).message}\n`);
  process.exit(1);
}
voxline.engine.ready().then(
  () => process.stdout.write('voxline ready: embedded voice warm\n'),
  (error: Error) => process.stderr.write(`voxline: ${error.message}\n`),
);

let stopping = false;
const onSignal = (signal: string) => {
  if (stopping) process.exit(130); // a second signal exits at once
  stopping = true;
  process.stdout.write(`voxline: ${signal}, draining sessions\n`);
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  voxline.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', () => onSignal('SIGTERM'));
process.on('SIGINT', () => onSignal('SIGINT'));
