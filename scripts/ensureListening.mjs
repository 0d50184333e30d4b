// Part of `npm test` (and `npm start`): the listening tests drive Debian's PocketSphinx and
// never skip, so on a fresh machine this installs it (apt, as root or through sudo) or says
// exactly what to do.
import { existsSync } from 'node:fs';
import { installDebianPackages } from './aptPackages.mjs';

const libraryDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
const hasLibrary = libraryDirs.some((dir) => existsSync(`${dir}/libpocketsphinx.so.3`));
const hasModel = existsSync('/usr/share/pocketsphinx/model/en-us/en-us.lm.bin');
if (!hasLibrary || !hasModel) {
  installDebianPackages(['pocketsphinx', 'pocketsphinx-en-us'], 'PocketSphinx is needed for listening and is not installed');
}
