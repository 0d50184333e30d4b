// Word error rate: word-level edit distance (substitutions + deletions + insertions) over the
// reference's word count. Words are compared lowercased, punctuation stripped.

export function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}'\s]+/gu, ' ')
    .split(/\s+/)
    .filter((w) => w !== '');
}

/** Edits to turn `hypothesis` into `reference`, word by word (one row of the DP table at a time). */
export function wordEdits(reference: readonly string[], hypothesis: readonly string[]): number {
  let previous = Array.from({ length: hypothesis.length + 1 }, (_, j) => j);
  for (let i = 1; i <= reference.length; i++) {
    const row = [i];
    for (let j = 1; j <= hypothesis.length; j++) {
      const substitution = previous[j - 1]! + (reference[i - 1] === hypothesis[j - 1] ? 0 : 1);
      row.push(Math.min(substitution, previous[j]! + 1, row[j - 1]! + 1));
    }
    previous = row;
  }
  return previous[hypothesis.length]!;
}

/** Corpus WER: all edits over all reference words. */
export function wordErrorRate(pairs: ReadonlyArray<{ reference: string; hypothesis: string }>): number {
  let edits = 0;
  let total = 0;
  for (const { reference, hypothesis } of pairs) {
    const ref = words(reference);
    edits += wordEdits(ref, words(hypothesis));
    total += ref.length;
  }
  return total === 0 ? 0 : edits / total;
}
