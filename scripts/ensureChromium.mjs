// Part of `npm test`: the browser tests drive Debian's Chromium and never skip, so on a
// fresh machine this installs it (apt, as root or through sudo) or says exactly what to do.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (existsSync(path)) process.exit(0);
const has = (cmd) => {
  try {
    execSync(`command -v ${cmd}`, { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
};
const root = process.getuid?.() === 0;
if (!has('apt-get') || (!root && !has('sudo'))) {
  process.stderr.write(`Chromium is needed for the browser tests and is not at ${path}.\nInstall it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH.\n`);
  process.exit(1);
}
const sudo = root ? '' : 'sudo ';
process.stdout.write('Installing Debian chromium for the browser tests…\n');
execSync(`${sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${sudo}apt-get install -y -qq chromium`, { stdio: 'inherit', shell: '/bin/sh' });
