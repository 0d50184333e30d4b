// `voxline` run as a user runs it: the CLI from source in a real process.
import { spawn } from 'node:child_process';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI from source; `until` resolves early (leaving it running) once stdout matches. */
export function voxline(args: string[], options: { env?: Record<string, string>; until?: RegExp; input?: string } = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    env: { ...process.env, GROQ_API_KEY: '', ELEVENLABS_API_KEY: '', ...options.env },
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  const run: Run = { code: null, stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (run.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (run.stderr += d.toString()));
  const exited = new Promise<Run>((resolve) => child.once('exit', (code) => resolve({ ...run, code })));
  const ready = options.until
    ? new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', () => {
          if (options.until!.test(run.stdout)) resolve();
        });
        void exited.then((r) => reject(new Error(`exited ${r.code}: ${r.stderr}`)));
      })
    : Promise.resolve();
  return { child, run, exited, ready };
}

