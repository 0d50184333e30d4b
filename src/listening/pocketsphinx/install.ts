// Where Debian's PocketSphinx lives, and whether it is all there: the server asks before it
// offers listening, so a machine without the packages answers listen_unavailable instead of
// failing at the first turn.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export interface PocketSphinxPaths {
  /** libpocketsphinx.so.3 (0.8+5prealpha API). */
  library: string;
  /** libsphinxbase.so.3 (its configuration and memory functions). */
  sphinxbase: string;
  /** The acoustic model folder (holds mdef, means, …). */
  hmm: string;
  /** The general language model (binary). */
  lm: string;
  /** The pronunciation dictionary; a grammar may only use its words. */
  dict: string;
}

export type PocketSphinxLookup = { ok: true; paths: PocketSphinxPaths } | { ok: false; reason: string };

const libraryDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib/arm-linux-gnueabihf', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
const modelDir = '/usr/share/pocketsphinx/model/en-us';

function findLibrary(file: string): string | undefined {
  for (const dir of libraryDirs) {
    const path = join(dir, file);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** The installed library and en-us model (Debian: pocketsphinx, pocketsphinx-en-us), or what is missing. */
export function findPocketSphinx(overrides: Partial<PocketSphinxPaths> = {}): PocketSphinxLookup {
  try {
    createRequire(import.meta.url).resolve('koffi');
  } catch {
    return { ok: false, reason: 'the koffi package (FFI) is not installed' };
  }
  const library = overrides.library ?? findLibrary('libpocketsphinx.so.3');
  const sphinxbase = overrides.sphinxbase ?? findLibrary('libsphinxbase.so.3');
  if (!library || !existsSync(library)) return { ok: false, reason: 'libpocketsphinx.so.3 is not installed (Debian: apt-get install pocketsphinx)' };
  if (!sphinxbase || !existsSync(sphinxbase)) return { ok: false, reason: 'libsphinxbase.so.3 is not installed (Debian: apt-get install pocketsphinx)' };
  const paths: PocketSphinxPaths = {
    library,
    sphinxbase,
    hmm: overrides.hmm ?? join(modelDir, 'en-us'),
    lm: overrides.lm ?? join(modelDir, 'en-us.lm.bin'),
    dict: overrides.dict ?? join(modelDir, 'cmudict-en-us.dict'),
  };
  for (const path of [join(paths.hmm, 'mdef'), paths.lm, paths.dict]) {
    if (!existsSync(path)) return { ok: false, reason: `${path} is missing (Debian: apt-get install pocketsphinx-en-us)` };
  }
  return { ok: true, paths };
}

/** Whether PocketSphinx can listen here (library, model and FFI all present). */
export function pocketsphinxAvailable(overrides: Partial<PocketSphinxPaths> = {}): boolean {
  return findPocketSphinx(overrides).ok;
}
