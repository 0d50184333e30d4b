// Part of `npm test`: the browser tests drive Debian's Chromium and never skip, so on a
// fresh machine this installs it (apt, as root or through sudo) or says exactly what to do.
import { existsSync } from 'node:fs';
import { installDebianPackages } from './aptPackages.mjs';

const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(path)) {
  installDebianPackages(['chromium'], `Chromium is needed for the browser tests and is not at ${path}`, 'Install it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH.');
}
