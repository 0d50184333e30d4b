// A synthesis worker process of a test cluster (as `voxline serve --redis … --role worker` makes
// one) with the deterministic tone voice. Configured by environment: REDIS_URL, TONE_PAUSE_MS,
// TONE_RATE (its output rate: a rate other than the session's makes the gateway resample).
import { connectRedis } from '../../src/cluster/redis.js';
import { SynthWorker } from '../../src/cluster/synthJobs.js';
import { ToneProvider } from './toneProvider.js';

const redis = await connectRedis(process.env.REDIS_URL!);
const worker = new SynthWorker(redis, new ToneProvider({ pauseMs: Number(process.env.TONE_PAUSE_MS ?? 20), sampleRate: Number(process.env.TONE_RATE ?? 24_000) }), {
  concurrency: 8,
  claimIdleMs: 1_000,
});
await worker.start();
process.on('SIGTERM', () => {
  void worker.stop(5_000).then(() => process.exit(0));
});
process.stdout.write('tone worker ready\n');
