// Whether a provider lets go of a block it handed on while it waits for the next one. A suspended
// generator keeps what its frame held (src/providers/iteration.ts): the block it yielded last
// would stay alive, per session, for as long as the provider waits on its upstream.
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { PcmBlock } from '../../src/providers/types.js';

v8.setFlagsFromString('--expose-gc');
/** A full garbage collection (V8's, exposed for the tests that use this module). */
export const gc = runInNewContext('gc') as () => void;

/**
 * Takes the first block, asks for the next (the provider runs on to its wait), collects garbage and
 * says whether the first block's samples were collected. Ends the iteration either way.
 */
export async function firstBlockCollectedDuringWait(blocks: AsyncIterator<PcmBlock>): Promise<boolean> {
  try {
    const handedOn = await (async () => new WeakRef((await blocks.next()).value!.samples))();
    const next = blocks.next();
    // A WeakRef keeps its target for the rest of the task that made it: collect in a later one.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    const collected = handedOn.deref() === undefined;
    await next.catch(() => {});
    return collected;
  } finally {
    await blocks.return?.(undefined);
  }
}
