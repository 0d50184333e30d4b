// Incremental text → synthesis pieces. Sentence boundaries come from ICU (Intl.Segmenter),
// which handles English and Arabic punctuation alike (. ! ? … ؟ ۔ and the rest of UAX #29's
// terminators). A sentence is complete once it ends in a terminator followed by whitespace,
// unless the word before the full stop is an abbreviation ("Dr. ", "e.g. ", "U.S. "); a
// sentence without one waits for more text, the end of the text, or `flush` (the session's
// quiet period). Pieces longer than a provider accepts are cut at a clause boundary, else a
// word boundary, else hard.

const sentenceSegmenter = new Intl.Segmenter(undefined, { granularity: 'sentence' });
const wordSegmenter = new Intl.Segmenter(undefined, { granularity: 'word' });
const clauseBreak = /[,;:،؛\u2013\u2014]\s/gu;

/**
 * Appended to unfinished text before segmenting: an upper-case letter, the start of a new
 * sentence, after which ICU breaks behind every terminator it knows (and behind none where
 * the text simply stops), so the one pass also says whether the last sentence is complete.
 */
const probe = 'A';

/** Words whose full stop does not end a sentence (compared lower-case, without the stop). */
const abbreviations = new Set([
  'mr', 'mrs', 'ms', 'mx', 'dr', 'prof', 'sr', 'jr', 'st', 'mt', 'vs', 'etc', 'cf', 'al', 'approx',
  'fig', 'vol', 'inc', 'ltd', 'corp', 'dept', 'lt', 'col', 'capt', 'sgt', 'rev', 'hon', 'ave', 'blvd',
  'jan', 'feb', 'apr', 'jun', 'jul', 'aug', 'sep', 'sept', 'oct', 'nov', 'dec',
]);
/** The last word of a sentence when it ends in a full stop: a word, or dotted letters ("J.", "U.S.", "e.g."). */
const lastWordWithStop = /(?:^|[^\p{L}\p{N}.'’])((?:\p{L}\.)+|\p{L}+\.)\s*$/u;
const endsInStop = /\.\s*$/u;
const endsInWhitespace = /\s$/u;

/** True when `sentence` ends in an abbreviation, so ICU's break after it is no sentence end. */
export function endsInAbbreviation(sentence: string): boolean {
  if (!endsInStop.test(sentence)) return false;
  const word = lastWordWithStop.exec(sentence)?.[1];
  if (word === undefined) return false;
  // Dotted letters are initials or short forms; a longer word must be a known abbreviation.
  return word.length === 2 || word.charAt(word.length - 3) === '.' || abbreviations.has(word.slice(0, -1).toLowerCase());
}

export class SentenceSplitter {
  private tail = '';
  private readonly ready: string[] = [];
  private ended = false;

  constructor(readonly maxPieceChars: number) {
    if (maxPieceChars < 1) throw new RangeError('maxPieceChars must be positive');
  }

  /** More text; with `final`, the text ends with it (one segmentation pass instead of two). */
  push(text: string, final = false): void {
    if (this.ended) return;
    this.tail += text;
    this.ended = final;
    this.extract(final);
  }

  /** The text ended. */
  end(): void {
    this.push('', true);
  }

  /**
   * No more text came for a while: what is held (a sentence without its terminator, or one
   * ending in an abbreviation) becomes a piece now. Text that follows starts a new piece.
   */
  flush(): void {
    if (this.ended) return;
    this.emit(this.tail);
    this.tail = '';
  }

  /**
   * The next complete piece, or null if none is ready yet. With `packUpTo`, the sentences
   * already complete are joined into one piece of at most that many characters: fewer
   * upstream requests, so fewer first-byte waits between sentences. With `packWhileUnder`,
   * a piece shorter than that takes the following complete sentences too (up to the
   * provider's limit) until it is not.
   */
  next(packUpTo = 0, packWhileUnder = 0): string | null {
    let piece = this.ready.shift();
    if (piece === undefined) return null;
    while (this.ready.length > 0) {
      const joined = piece.length + 1 + this.ready[0]!.length;
      if (joined > packUpTo && (piece.length >= packWhileUnder || joined > this.maxPieceChars)) break;
      piece = `${piece} ${this.ready.shift()!}`;
    }
    return piece;
  }

  /** True when the text ended and every piece was taken. */
  get done(): boolean {
    return this.ended && this.ready.length === 0;
  }

  get hasReady(): boolean {
    return this.ready.length > 0;
  }

  private extract(all: boolean): void {
    // One segmentation pass: of the whole text when it ended, else of the text and the probe.
    const text = all ? this.tail : this.tail + probe;
    const held = all ? text.length : this.tail.length;
    let start = 0;
    for (const { index, segment } of sentenceSegmenter.segment(text)) {
      const end = index + segment.length;
      if (end > held) break; // the probe's sentence: the text's last one is unfinished
      // The sentence before the probe is complete only if whitespace followed its terminator
      // (a client may still be sending "!!" or a closing quote).
      if (!all && end === held && !endsInWhitespace.test(segment)) break;
      // "Dr. " joins the sentence after it (and waits for it at the end of unfinished text).
      if (end < text.length && endsInAbbreviation(segment)) continue;
      this.emit(text.slice(start, end));
      start = end;
    }
    let rest = all ? '' : this.tail.slice(start);
    // An unfinished sentence longer than a piece can hold need not wait for its end.
    while (rest.length > this.maxPieceChars) {
      const cut = cutPoint(rest, this.maxPieceChars);
      this.emit(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    this.tail = rest;
  }

  private emit(sentence: string): void {
    let rest = sentence;
    while (rest.length > this.maxPieceChars) {
      const cut = cutPoint(rest, this.maxPieceChars);
      pushNonBlank(this.ready, rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    pushNonBlank(this.ready, rest);
  }
}

function pushNonBlank(out: string[], piece: string): void {
  const trimmed = piece.trim();
  if (trimmed.length > 0) out.push(trimmed);
}

/** Where to cut `text` so the first part has at most `max` characters. */
function cutPoint(text: string, max: number): number {
  const window = text.slice(0, max + 1);
  let clause = -1;
  for (const m of window.matchAll(clauseBreak)) {
    const end = m.index + m[0].length;
    if (end <= max) clause = end;
  }
  if (clause > max / 3) return clause;
  let word = -1;
  for (const seg of wordSegmenter.segment(window)) {
    if (seg.index > 0 && seg.index <= max && !seg.isWordLike) word = seg.index;
    if (seg.index > 0 && seg.index <= max && seg.isWordLike && seg.index > word) word = seg.index;
  }
  return word > 0 ? word : max;
}
