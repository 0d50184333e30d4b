// Installs Debian packages a test needs when they are missing (apt, as root or through sudo),
// or says exactly what to do and exits 1: tests never skip because something is absent.
import { execSync } from 'node:child_process';

const has = (cmd) => {
  try {
    execSync(`command -v ${cmd}`, { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
};

/** `packages` for `purpose`; `hint` is printed when they cannot be installed here. */
export function installDebianPackages(packages, purpose, hint = `Install it (Debian: apt-get install -y ${packages.join(' ')}).`) {
  const root = process.getuid?.() === 0;
  if (!has('apt-get') || (!root && !has('sudo'))) {
    process.stderr.write(`${purpose}: ${hint}\n`);
    process.exit(1);
  }
  const sudo = root ? '' : 'sudo ';
  process.stdout.write(`Installing Debian ${packages.join(', ')} (${purpose})…\n`);
  try {
    execSync(`${sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${sudo}apt-get install -y -qq ${packages.join(' ')}`, { stdio: 'inherit', shell: '/bin/sh' });
  } catch {
    process.stderr.write(`${purpose}: installing failed. ${hint}\n`);
    process.exit(1);
  }
}
