// The shared upstream in its own process, so its CPU never competes with the orchestrator's
// bookkeeping: the Groq emulator, first byte after `firstByteDelayMs`, then real-time pacing.
// IPC: `ready` with its URL; `released` (epoch ms, per marked request) as responses close;
// answers `emuStats` and applies `configure`.
// tsx turns on source-mapped stack traces; production (`node dist/...`) runs without them, and
// every aborted fetch builds an Error, so leaving them on would bill tsx's cost to the contenders.
process.setSourceMapsEnabled(false);
import { GroqEmulator, type GroqEmulatorOptions } from '../src/emulators/groqEmulator.js';
import { epochMs } from './common.js';

const firstByteDelayMs = Number(process.argv[2] ?? 20);
const emu = new GroqEmulator({ firstByteDelayMs, realtime: 1, chunkMs: 20 });
const url = await emu.listen();
emu.on('released', (e) => {
  const marker = /^Mark [^ ]+\./.exec(e.input)?.[0];
  if (marker) process.send!({ type: 'released', marker, at: performance.timeOrigin + e.at });
});
process.on('message', (m: { type: string; options?: Partial<GroqEmulatorOptions> }) => {
  if (m.type === 'configure') {
    emu.configure(m.options ?? {});
    process.send!({ type: 'configured' });
  } else if (m.type === 'emuStats') process.send!({ type: 'emuStats', ...emu.stats(), at: epochMs() });
});
process.send!({ type: 'ready', url });
