// Client phrases as PocketSphinx's grammar holds them, and transcripts mapped back.
import { describe, expect, it } from 'vitest';
import { mapBack, maxPhraseWords, normalisePhrase, normalisePhrases, spellNumber } from '../../src/listening/pocketsphinx/phrases.js';
import { wordEdits, wordErrorRate } from '../support/wordErrorRate.js';

describe('pocketsphinx phrases', () => {
  it('lowercases, strips punctuation, keeps apostrophes inside words', () => {
    expect(normalisePhrase('What time is it?')).toEqual({ text: 'what time is it' });
    expect(normalisePhrase("  What's   the weather,  today!")).toEqual({ text: "what's the weather today" });
    expect(normalisePhrase('Turn on the kitchen-lights.')).toEqual({ text: 'turn on the kitchen lights' });
    expect(normalisePhrase('it’s fine')).toEqual({ text: "it's fine" });
  });

  it('spells whole numbers and refuses tokens that mix digits', () => {
    expect(spellNumber(0)).toBe('zero');
    expect(spellNumber(21)).toBe('twenty one');
    expect(spellNumber(105)).toBe('one hundred five');
    expect(spellNumber(12_340)).toBe('twelve thousand three hundred forty');
    expect(normalisePhrase('set a timer for 5 minutes')).toEqual({ text: 'set a timer for five minutes' });
    expect(normalisePhrase('count to 1,000')).toEqual({ text: 'count to one thousand' });
    expect(normalisePhrase('the 3rd door')).toHaveProperty('reason');
    expect(normalisePhrase('2.5 cups')).toHaveProperty('reason');
    expect(normalisePhrase('1000000 people')).toHaveProperty('reason');
  });

  it('refuses what a grammar cannot hold: no words, other scripts, too long, JSGF syntax', () => {
    expect(normalisePhrase('?!')).toHaveProperty('reason');
    expect(normalisePhrase('café')).toHaveProperty('reason');
    expect(normalisePhrase(Array.from({ length: maxPhraseWords + 1 }, () => 'go').join(' '))).toHaveProperty('reason');
    // Grammar syntax is only ever a separator: nothing but [a-z'] words reach the JSGF text.
    expect(normalisePhrase('yes | <rule> ; no')).toEqual({ text: 'yes rule no' });
  });

  it('maps a transcript back to the phrase as the client wrote it', () => {
    const set = normalisePhrases(['Set a timer for 5 minutes!', 'set a timer for five minutes', 'What time is it?', '3rd']);
    expect(set.normalised).toEqual(['set a timer for five minutes', 'what time is it']);
    expect(set.refused.map((r) => r.phrase)).toEqual(['3rd']);
    expect(mapBack(set, 'set a timer for five minutes')).toBe('Set a timer for 5 minutes!');
    expect(mapBack(set, ' what  time is it ')).toBe('What time is it?');
    expect(mapBack(set, 'what time')).toBe('what time');
    expect(mapBack(set, '')).toBe('');
  });

  it('word error rate counts substitutions, deletions and insertions', () => {
    expect(wordEdits(['a', 'b', 'c'], ['a', 'x', 'c', 'd'])).toBe(2);
    expect(wordErrorRate([{ reference: 'turn on the lights', hypothesis: 'turn the light' }])).toBe(0.5);
    expect(wordErrorRate([{ reference: 'Stop.', hypothesis: 'stop' }])).toBe(0);
  });
});
