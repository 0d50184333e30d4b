// Incremental text → synthesis pieces. Sentence boundaries come from ICU (Intl.Segmenter),
// which handles English and Arabic punctuation alike. A sentence is complete once text
// after it arrived (or the text ended). Pieces longer than a provider accepts are cut at
// a clause boundary, else a word boundary, else hard.

const sentenceSegmenter = new Intl.Segmenter(undefined, { granularity: 'sentence' });
const wordSegmenter = new Intl.Segmenter(undefined, { granularity: 'word' });
const clauseBreak = /[,;:،؛\u2013\u2014]\s/gu;

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
    const segments = Array.from(sentenceSegmenter.segment(this.tail), (s) => s.segment);
    const complete = all ? segments.length : Math.max(0, segments.length - 1);
    for (let i = 0; i < complete; i++) this.emit(segments[i]!);
    let rest = all ? '' : (segments[segments.length - 1] ?? '');
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
