// Offline speech-to-text with Debian's PocketSphinx (out of process, through koffi).
export { PocketSphinxRecognizer, pocketsphinxRecognizer, defaultPocketSphinxOptions, type PocketSphinxOptions, type PocketSphinxStats, type RecognizerLog } from './pocketsphinxRecognizer.js';
export { findPocketSphinx, pocketsphinxAvailable, type PocketSphinxPaths, type PocketSphinxLookup } from './install.js';
export { normalisePhrase, normalisePhrases, mapBack, spellNumber, type PhraseSet } from './phrases.js';
