import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    setupFiles: ['test/setup/fastCheck.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests spawn synth workers and servers: keep file parallelism modest on 2 cores.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'node', include: ['test/**/*.test.ts'], exclude: [...configDefaults.exclude, 'test/browser/**', 'test/integration/cluster*.test.ts'] },
      },
      {
        extends: true,
        // The cluster files run alone, after the node project: each starts redis-server and several
        // voxline processes (a TypeScript compile each), which starve the timing-bound tests
        // (recognizer deadlines, chunk gaps) of a file running beside them on 2 cores.
        test: { name: 'cluster', include: ['test/integration/cluster*.test.ts'], maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
      {
        extends: true,
        // One browser file at a time, after the rest: each drives a Chromium, a server and its
        // synth (and recognizer) workers, and two at once on 2 cores starve each other's audio
        // thread into underruns that fail the sample-exact comparisons.
        test: { name: 'browser', include: ['test/browser/**/*.test.ts'], maxWorkers: 1, sequence: { groupOrder: 2 } },
      },
    ],
  },
});
