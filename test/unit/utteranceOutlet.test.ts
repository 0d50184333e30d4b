// The outlet of one utterance's audio: numbers, tallies, gate and seal, apart from any chart.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { UtteranceOutlet } from '../../machines/utterances.js';

function clocked(start = 1_000) {
  let now = start;
  return { outlet: new UtteranceOutlet(() => now), advance: (ms: number) => (now += ms) };
}

const chunk = (samples = 480) => new Int16Array(samples);

describe('UtteranceOutlet', () => {
  it('passes nothing until the chart opens it, and nothing once closed again', () => {
    const { outlet } = clocked();
    expect(outlet.pass(chunk())).toBe(-1);
    outlet.open();
    expect(outlet.pass(chunk())).toBe(0);
    expect(outlet.pass(chunk())).toBe(1);
    outlet.close();
    expect(outlet.pass(chunk())).toBe(-1);
    // What the machine sends itself continues the same numbering.
    expect(outlet.number(chunk())).toBe(2);
  });

  it('once sealed, numbers nothing and passes nothing, whatever the gate is told later', () => {
    const { outlet } = clocked();
    outlet.open();
    outlet.pass(chunk());
    outlet.seal();
    expect(outlet.isSealed).toBe(true);
    expect(outlet.pass(chunk())).toBe(-1);
    expect(outlet.number(chunk())).toBe(-1);
    outlet.open();
    outlet.close();
    outlet.seal();
    expect(outlet.isOpen).toBe(false);
    expect(outlet.pass(chunk())).toBe(-1);
    expect(outlet.stats(0, 24_000).chunks).toBe(1);
  });

  it('tallies every chunk it numbered, and times the first from acceptance', () => {
    const { outlet, advance } = clocked(1_000);
    advance(250);
    outlet.number(chunk(480));
    outlet.open();
    advance(40);
    outlet.pass(chunk(240));
    outlet.close();
    outlet.pass(chunk(999)); // refused: not counted
    expect(outlet.stats(1_000, 24_000)).toEqual({ chunks: 2, bytes: 720 * 2, firstAudioMs: 250, durationMs: 30 });
    expect(clocked().outlet.stats(0, 24_000)).toEqual({ chunks: 0, bytes: 0, firstAudioMs: null, durationMs: 0 });
  });

  it('measures quiet from the last chunk it numbered or the last restart of the gap clock', () => {
    const { outlet, advance } = clocked();
    advance(100);
    expect(outlet.quietFor()).toBe(100);
    outlet.number(chunk());
    advance(30);
    expect(outlet.quietFor()).toBe(30);
    outlet.restartGapClock();
    advance(5);
    expect(outlet.quietFor()).toBe(5);
    outlet.pass(chunk()); // closed: refused, so no sign of life
    advance(5);
    expect(outlet.quietFor()).toBe(10);
  });

  test.prop([fc.array(fc.constantFrom('open', 'close', 'pass', 'number', 'seal'), { maxLength: 60 })])(
    'any order of orders: sequence numbers run 0, 1, 2… without gaps, and none after the seal',
    (orders) => {
      const { outlet } = clocked();
      const seqs: number[] = [];
      let sealed = false;
      for (const order of orders) {
        if (order === 'open') outlet.open();
        else if (order === 'close') outlet.close();
        else if (order === 'seal') (outlet.seal(), (sealed = true));
        else {
          const open = outlet.isOpen;
          const seq = order === 'pass' ? outlet.pass(chunk(1)) : outlet.number(chunk(1));
          if (sealed || (order === 'pass' && !open)) expect(seq).toBe(-1);
          else seqs.push(seq);
        }
      }
      expect(seqs).toEqual(seqs.map((_, i) => i));
      expect(outlet.stats(0, 1_000).chunks).toBe(seqs.length);
    },
  );
});

describe('UtteranceOutlet: what was heard', () => {
  const rate = 1_000; // one sample a millisecond keeps the arithmetic readable

  it('counts whole pieces played, the played share of a piece all sent, and of one still being sent only what the slowest speech says', () => {
    const { outlet, advance } = clocked();
    outlet.startPiece(30); // 0..1000 ms
    outlet.number(chunk(1_000));
    outlet.startPiece(20); // 1000..2000 ms (the previous piece ends here)
    outlet.number(chunk(1_000));
    outlet.endPiece();
    outlet.startPiece(40); // 2000.. still being sent
    outlet.number(chunk(500));
    expect(outlet.heardChars(0, rate)).toBe(0);
    expect(outlet.heardChars(500, rate)).toBe(15);
    expect(outlet.heardChars(1_000, rate)).toBe(30);
    expect(outlet.heardChars(1_500, rate)).toBe(40);
    expect(outlet.heardChars(2_000, rate)).toBe(50);
    expect(outlet.heardChars(2_400, rate)).toBe(54); // 0.4 s × 10 chars/s of the open piece
    // What the user can have played: the report when there is one (never past what was sent),
    // else what was sent, never more than real time since the first audio.
    expect(outlet.playedMs(rate, 900)).toBe(900);
    expect(outlet.playedMs(rate, 99_999)).toBe(2_500);
    advance(1_200);
    expect(outlet.playedMs(rate, undefined)).toBe(1_200);
  });

  it('counts nothing of a piece that made no audio', () => {
    const { outlet } = clocked();
    outlet.startPiece(1); // no audio before the next piece starts
    outlet.startPiece(4);
    outlet.endPiece(); // nor before it ended
    outlet.number(chunk(480));
    expect(outlet.heardChars(10_000, rate)).toBe(0);
  });

  it('counts nothing of a piece marked after the utterance was sealed', () => {
    const { outlet } = clocked();
    outlet.seal();
    outlet.startPiece(10);
    expect(outlet.heardChars(10_000, rate)).toBe(0);
  });
});
