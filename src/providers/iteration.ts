// Handing provider audio on without keeping it. A suspended generator keeps every value its frame
// held, and a provider's generator is suspended most of its life, waiting on the network or a
// worker for the next block: a block it already yielded (audio the client has) would stay alive
// with it, per session. So a provider's generator takes each block through `nextItem` and lets go
// of it before it waits again:
//
//   let block = await nextItem(blocks);
//   while (block) {
//     yield block;
//     block = null;
//     block = await nextItem(blocks);
//   }
//
// rather than `yield*` or `for await`, whose iterator results stay in the frame.
// (test/support/blockRetention.ts checks it with a WeakRef and a GC: for each provider, the
// utterance's job and the synthesis worker.)

/** The next item of `items`, or null at its end; the iterator result never reaches the caller's frame. */
export async function nextItem<T>(items: AsyncIterator<T>): Promise<T | null> {
  const result = await items.next();
  return result.done ? null : result.value;
}
