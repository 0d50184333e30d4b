// Part of `npm test`: the listening tests drive Debian's PocketSphinx and never skip, so on a
// fresh machine this installs it (apt, as root or through sudo) or says exactly what to do.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const libraryDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
const hasLibrary = libraryDirs.some((dir) => existsSync(`${dir}/libpocketsphinx.so.3`));
const hasModel = existsSync('/usr/share/pocketsphinx/model/en-us/en-us.lm.bin');
if (hasLibrary && hasModel) process.exit(0);
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
  process.stderr.write('PocketSphinx is needed for the listening tests and is not installed. Install it (Debian: apt-get install -y pocketsphinx pocketsphinx-en-us).\n');
  process.exit(1);
}
const sudo = root ? '' : 'sudo ';
process.stdout.write('Installing Debian pocketsphinx and pocketsphinx-en-us for the listening tests…\n');
try {
  execSync(`${sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${sudo}apt-get install -y -qq pocketsphinx pocketsphinx-en-us`, { stdio: 'inherit', shell: '/bin/sh' });
} catch {
  process.stderr.write('Installing PocketSphinx failed (apt-get install -y pocketsphinx pocketsphinx-en-us).\n');
  process.exit(1);
}
