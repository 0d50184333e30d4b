// A client's expected phrases as PocketSphinx's grammar can hold them: lowercase dictionary
// words only, numbers spelled out. The grammar is built from these normalised forms (so no
// client text reaches the JSGF parser but [a-z'] words), and a transcript in normalised
// form is mapped back to the phrase exactly as the client gave it.

/** Phrases beyond this many make a job fail: a grammar is for a closed, small set. */
export const maxPhrases = 1000;
/** A phrase longer than this (in words, once normalised) is left out. */
export const maxPhraseWords = 24;

export interface PhraseSet {
  /** Normalised phrases, each once, in the client's order. */
  normalised: string[];
  /** Normalised form → the client's phrase (the first one given, when two normalise alike). */
  original: Map<string, string>;
  /** Client phrases that could not be normalised (digits in words, too long, nothing left), with why. */
  refused: Array<{ phrase: string; reason: string }>;
}

const ones = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen', 'eighteen', 'nineteen'];
const tens = ['', '', 'twenty', 'thirty', 'forty', 'fifty', 'sixty', 'seventy', 'eighty', 'ninety'];

/** 0 ≤ n < 1,000,000 in words ("twenty one", "one hundred five"), as cmudict spells them. */
export function spellNumber(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= 1_000_000) throw new RangeError(`cannot spell ${n}`);
  if (n < 20) return ones[n]!;
  if (n < 100) return n % 10 === 0 ? tens[Math.floor(n / 10)]! : `${tens[Math.floor(n / 10)]} ${ones[n % 10]}`;
  if (n < 1000) return n % 100 === 0 ? `${ones[Math.floor(n / 100)]} hundred` : `${ones[Math.floor(n / 100)]} hundred ${spellNumber(n % 100)}`;
  const thousands = Math.floor(n / 1000);
  return n % 1000 === 0 ? `${spellNumber(thousands)} thousand` : `${spellNumber(thousands)} thousand ${spellNumber(n % 1000)}`;
}

/**
 * One phrase in normalised form, or the reason it cannot be one. Letters are lowercased,
 * punctuation and hyphens separate words, an apostrophe inside a word stays ("what's"),
 * a whole number below a million is spelled out (a comma between digit groups is allowed:
 * "1,000"); a token mixing digits with anything else ("3rd", "2.5") is refused.
 */
export function normalisePhrase(phrase: string): { text: string } | { reason: string } {
  const words: string[] = [];
  const tokens = phrase.normalize('NFKC').toLowerCase().replace(/[‘’]/g, "'").split(/[^\p{L}\p{N}',.]+/u);
  for (const raw of tokens) {
    // Sentence punctuation around a token is not part of it ("it?", "lights.").
    const token = raw.replace(/^[',.]+|[',.]+$/g, '');
    if (token === '') continue;
    if (/^\d{1,3}(,\d{3})*$|^\d+$/.test(token)) {
      const n = Number(token.replace(/,/g, ''));
      if (n >= 1_000_000) return { reason: `number ${token} is too large to spell` };
      words.push(...spellNumber(n).split(' '));
      continue;
    }
    if (/\d/.test(token)) return { reason: `token "${token}" mixes digits with other characters` };
    // Commas and dots inside a word ("e.g", "a,b") separate words.
    for (const part of token.split(/[,.]+/)) {
      const word = part.replace(/^'+|'+$/g, '');
      if (word === '') continue;
      if (!/^[a-z]+('[a-z]+)*$/.test(word)) return { reason: `word "${word}" has letters the dictionary cannot hold` };
      words.push(word);
    }
  }
  if (words.length === 0) return { reason: 'no words' };
  if (words.length > maxPhraseWords) return { reason: `more than ${maxPhraseWords} words` };
  return { text: words.join(' ') };
}

export function normalisePhrases(phrases: readonly string[]): PhraseSet {
  const set: PhraseSet = { normalised: [], original: new Map(), refused: [] };
  for (const phrase of phrases) {
    const result = normalisePhrase(phrase);
    if ('reason' in result) {
      set.refused.push({ phrase, reason: result.reason });
      continue;
    }
    if (set.original.has(result.text)) continue;
    set.original.set(result.text, phrase);
    set.normalised.push(result.text);
  }
  return set;
}

/** A grammar's transcript as the client wrote the phrase ('' stays ''; an unknown text is returned as heard). */
export function mapBack(set: PhraseSet, heard: string): string {
  const text = heard.trim().replace(/\s+/g, ' ');
  return set.original.get(text) ?? text;
}
