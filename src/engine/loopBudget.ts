// A share of the event loop for audio work. Providers can hand over minutes of audio at
// once (the embedded voice runs ~200x faster than real time), and resampling and framing
// it in one go would hold every other session's traffic. Audio loops ask for a turn after
// each block: past the budget since the loop last had a turn, they wait one setImmediate
// (I/O runs first), so no macrotask of audio work lasts much longer than the budget.

const budgetMs = 4;
let sliceStart = performance.now();
let turn: Promise<void> | null = null;

/** null while the current slice has budget left; otherwise a promise of the next turn (shared by every caller). */
export function loopTurn(): Promise<void> | null {
  if (performance.now() - sliceStart < budgetMs) return null;
  turn ??= new Promise((resolve) =>
    setImmediate(() => {
      turn = null;
      sliceStart = performance.now();
      resolve();
    }),
  );
  return turn;
}
