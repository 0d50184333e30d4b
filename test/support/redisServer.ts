// A throwaway redis-server for a test, on a free port of 127.0.0.1, owned by its pid (never
// daemonized, so nothing outlives the test). Debian's redis-server is installed when missing
// (scripts/aptPackages.mjs, like Chromium and PocketSphinx): these tests never skip.
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export interface RunningRedis {
  port: number;
  url: string;
  child: ChildProcess;
  /** Stop it (SIGKILL after 2 s) and wait for the exit. */
  stop(): Promise<void>;
}

function hasRedisServer(): boolean {
  try {
    execSync('command -v redis-server', { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
}

export async function ensureRedisServer(): Promise<void> {
  if (hasRedisServer()) return;
  const { installDebianPackages } = (await import('../../scripts/aptPackages.mjs' as string)) as {
    installDebianPackages: (packages: string[], purpose: string, hint?: string) => void;
  };
  installDebianPackages(['redis-server'], 'redis-server is needed for the cluster tests');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startRedis(port?: number): Promise<RunningRedis> {
  await ensureRedisServer();
  const p = port ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`redis-server did not start in 5 s: ${out.slice(-400)}`)), 5_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(deadline);
        resolve();
      }
    });
    void exited.then(() => {
      clearTimeout(deadline);
      reject(new Error(`redis-server exited: ${out.slice(-400)}`));
    });
  });
  return {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await exited;
      clearTimeout(force);
    },
  };
}
