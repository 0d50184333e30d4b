// `serve --redis … --role worker`: a worker serves HTTP (/metrics, /healthz, /readyz) only when a
// port is given, so two workers on one host never fight over the default 8080.
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../src/cli/config.js';

const serve = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const command = parseCommand(['serve', ...argv], env);
  if (command.command !== 'serve') throw new Error(`not serve: ${command.command}`);
  return command.config;
};

describe('cluster flags', () => {
  it('a worker gets a port only when one is given (--port or PORT)', () => {
    expect(serve(['--redis', 'redis://127.0.0.1:6379', '--role', 'worker']).cluster).not.toHaveProperty('workerPort');
    expect(serve(['--redis', 'redis://127.0.0.1:6379', '--role', 'worker', '--port', '0']).cluster).toMatchObject({ role: 'worker', workerPort: 0 });
    expect(serve(['--redis', 'redis://127.0.0.1:6379', '--role', 'worker'], { PORT: '9100' }).cluster).toMatchObject({ workerPort: 9100 });
  });

  it('--drain-ms bounds a worker’s drain as well as a gateway’s', () => {
    expect(serve(['--redis', 'redis://127.0.0.1:6379', '--role', 'worker', '--drain-ms', '2500']).cluster).toMatchObject({ drainMs: 2500 });
    expect(serve(['--redis', 'redis://127.0.0.1:6379']).cluster).toMatchObject({ drainMs: 10_000, role: 'all' });
  });

  it('--worker-concurrency sets a worker’s jobs at once per network provider; bad values are refused', () => {
    expect(serve(['--redis', 'redis://127.0.0.1:6379', '--role', 'worker']).cluster).not.toHaveProperty('workerConcurrency');
    expect(serve(['--redis', 'redis://127.0.0.1:6379', '--role', 'worker', '--worker-concurrency', '200']).cluster).toMatchObject({ workerConcurrency: 200 });
    expect(serve(['--redis', 'redis://127.0.0.1:6379', '--role', 'worker'], { VOXLINE_WORKER_CONCURRENCY: '16' }).cluster).toMatchObject({ workerConcurrency: 16 });
    expect(() => serve(['--redis', 'redis://127.0.0.1:6379', '--worker-concurrency', '0'])).toThrow(/--worker-concurrency must be a whole number from 1 to 10000/);
  });
});
