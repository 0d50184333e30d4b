// CI can run more cases (FC_NUM_RUNS) and replay a failure exactly (FC_SEED, FC_PATH).
import fc from 'fast-check';

const numRuns = process.env.FC_NUM_RUNS ? Number(process.env.FC_NUM_RUNS) : undefined;
const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
const path = process.env.FC_PATH;

fc.configureGlobal({
  ...(numRuns !== undefined ? { numRuns } : {}),
  ...(seed !== undefined ? { seed } : {}),
  ...(path !== undefined ? { path } : {}),
  // Print seed and path of a failure so it can be replayed with FC_SEED / FC_PATH.
  verbose: 1,
});
