#!/usr/bin/env node
// `voxline` (npx voxline): `serve` (default) or `say`. Configuration errors are one line on
// stderr and exit code 2; nothing here prints a stack trace for a user's mistake.
import { readFileSync } from 'node:fs';
import { parseCommand, usage, ConfigError } from './cli/config.js';
import { say, SayError } from './cli/say.js';
import { serve } from './cli/serve.js';

function version(): string {
  for (const path of ['../../package.json', '../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      /* next */
    }
  }
  return 'unknown';
}

try {
  const command = parseCommand(process.argv.slice(2));
  switch (command.command) {
    case 'help':
      process.stdout.write(usage);
      break;
    case 'version':
      process.stdout.write(`voxline ${version()}\n`);
      break;
    case 'serve':
      await serve(command.config);
      break;
    case 'say': {
      const { seconds } = await say(command.config);
      process.stdout.write(`wrote ${command.config.out} (${seconds.toFixed(2)} s, ${command.config.sampleRate} Hz)\n`);
      process.exit(0);
    }
  }
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`voxline: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof SayError) {
    process.stderr.write(`voxline say: ${error.message}\n`);
    process.exit(1);
  }
  const e = error as NodeJS.ErrnoException;
  // Start-up failures a user can act on (port in use, unknown voice…) stay one line too.
  process.stderr.write(`voxline: ${e.code === 'EADDRINUSE' ? `the port is already in use (${e.message})` : e.message}\n`);
  process.exit(1);
}
