// Issue 15, item 11: a client written from the wire contract alone sends the first sentence of
// an open utterance and waits for its audio before sending the rest. The real server on
// 127.0.0.1 with the real eSpeak NG workers, over a real WebSocket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { EspeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { defaultSessionLimits, type SessionLimits } from '../../machines/types.js';
import type { SynthesisRequest } from '../../src/providers/types.js';
import { assertContract, TestVoiceClient } from '../support/voiceClient.js';

/** Servers whose quiet period is past any wait of these tests (so audio comes from sentence ends alone), and the default. */
let noQuiet: VoxlineServer;
let withQuiet: VoxlineServer;
/** Every piece of text the servers asked eSpeak to speak, in order (the real provider, observed). */
const spoken: string[] = [];

async function serve(limits: Partial<SessionLimits>): Promise<{ server: VoxlineServer; url: string }> {
  const provider = new EspeakProvider({ size: 1 });
  const synthesize = provider.synthesize.bind(provider);
  provider.synthesize = (request: SynthesisRequest) => {
    spoken.push(request.text);
    return synthesize(request);
  };
  const server = createVoxlineServer({ providers: [provider], limits: { firstAudioTimeoutMs: 8_000, ...limits } });
  const listening = await server.listen(0, '127.0.0.1');
  await server.engine.ready();
  return { server, url: `${listening.url.replace('http', 'ws')}/v1/voice` };
}

let noQuietUrl: string;
let withQuietUrl: string;

beforeAll(async () => {
  ({ server: noQuiet, url: noQuietUrl } = await serve({ textQuietMs: 120_000 }));
  ({ server: withQuiet, url: withQuietUrl } = await serve({}));
});

afterAll(async () => {
  await Promise.all([noQuiet?.close(), withQuiet?.close()]);
});

const firstAudio = (c: TestVoiceClient, timeoutMs: number) =>
  c.waitFor(() => c.frames.find((f) => f.kind === 'audio'), timeoutMs);

describe('an open utterance over a real socket', () => {
  it('speaks a complete first sentence before any more text, so a client that waits for audio first is answered', async () => {
    spoken.length = 0;
    const c = await TestVoiceClient.start(noQuietUrl);
    c.send({ type: 'speak', id: 'open', text: 'The first sentence is complete. ', final: false });
    // This server's quiet period is far longer than the wait: audio can only come from the sentence end.
    const first = await firstAudio(c, 10_000).catch(() => undefined);
    expect(first, 'first audio of a complete sentence with final: false and no more text').toBeDefined();
    c.send({ type: 'speak', id: 'open', text: 'And here is the rest of it.', final: true });
    const end = await c.waitForEnd('open');
    expect(end.reason).toBe('completed');
    expect(spoken).toEqual(['The first sentence is complete.', 'And here is the rest of it.']);
    assertContract(c.frames);
    c.close();
  });

  it('speaks text without a sentence end after a short quiet period, then the rest once, in order', async () => {
    spoken.length = 0;
    const c = await TestVoiceClient.start(withQuietUrl);
    const sentAt = performance.now();
    c.send({ type: 'speak', id: 'quiet', text: 'Let me think', final: false });
    const first = await firstAudio(c, 5_000);
    // Not before the quiet period (the text might have gone on), and not much after it.
    expect(first.at - sentAt).toBeGreaterThanOrEqual(defaultSessionLimits.textQuietMs - 5);
    c.send({ type: 'speak', id: 'quiet', text: ' about it. Dr. Jones will know', final: false });
    c.send({ type: 'speak', id: 'quiet', text: ' the answer.', final: true });
    const end = await c.waitForEnd('quiet');
    expect(end.reason).toBe('completed');
    // Once each, in order (how the later sentences are packed into requests depends on timing),
    // and no piece ends at the abbreviation.
    expect(spoken[0]).toBe('Let me think');
    expect(spoken.join(' ')).toBe('Let me think about it. Dr. Jones will know the answer.');
    expect(spoken.filter((p) => p.endsWith('Dr.'))).toEqual([]);
    assertContract(c.frames);
    c.close();
  });
});
