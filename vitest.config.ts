import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/fastCheck.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests spawn synth workers and servers: keep file parallelism modest on 2 cores.
    maxWorkers: 2,
  },
});
