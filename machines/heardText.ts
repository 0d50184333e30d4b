// What the user heard of a text, counted the one way both sides agree on: non-space
// characters. The synthesis side counts the characters of each piece it speaks (its pieces
// are the text re-spaced by the sentence splitter); the turn turns a count back into a
// prefix of the reply as it was written. Pure, no I/O.

const space = /\s/u;

/** Characters of `text` that are not whitespace. */
export function nonSpaceChars(text: string): number {
  let n = 0;
  for (const ch of text) if (!space.test(ch)) n++;
  return n;
}

/**
 * The prefix of `text` holding at most `chars` non-space characters, cut back to the end of a
 * whole word (a half-heard word is not heard) and trimmed. All of `text` when `chars` covers it.
 */
export function heardPrefix(text: string, chars: number): string {
  if (chars <= 0) return '';
  let seen = 0;
  let end = 0;
  for (const ch of text) {
    if (!space.test(ch)) {
      if (seen === chars) break;
      seen++;
    }
    end += ch.length;
  }
  if (end >= text.length) return text.trim();
  // Mid-word: back to the last space before the cut (nothing, if the first word was not finished).
  if (!space.test(text[end]!) && end > 0 && !space.test(text[end - 1]!)) {
    const lastSpace = text.slice(0, end).search(/\s\S*$/u);
    end = lastSpace < 0 ? 0 : lastSpace;
  }
  return text.slice(0, end).trim();
}
