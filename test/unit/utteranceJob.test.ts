// UtteranceJob on its own (issue 16): the upstream of one utterance, driven by the commands the
// speaker sends it and by a small in-process provider whose every pull, request and release is
// counted. No machine, no sockets: the job's own logic (text pieces, pause and resume, the wait
// for text, cancel and release, one end, no audio after a cancel, errors).
import { describe, expect, it } from 'vitest';
import type { UpstreamCommand, UpstreamEvent, WireError } from '../../machines/types.js';
import { UtteranceOutlet } from '../../machines/utterances.js';
import { UtteranceJob, type SynthesisOptions, type VoiceRoute } from '../../src/engine/synthesisActor.js';
import { ProviderError, type PcmBlock, type SynthesisRequest, type TtsProvider } from '../../src/providers/types.js';
import { gc } from '../support/blockRetention.js';
import { OneBlockProvider } from '../support/oneBlockProvider.js';
import { settle } from '../support/settle.js';

const rate = 24_000;
const stream = 7;

/** Holds a provider between blocks until opened (or the request is aborted, unless it ignores aborts). */
class Valve {
  private waiters: (() => void)[] = [];
  constructor(private open_ = true) {}
  open(): void {
    this.open_ = true;
    for (const w of this.waiters.splice(0)) w();
  }
  close(): void {
    this.open_ = false;
  }
  wait(signal: AbortSignal | null): Promise<void> {
    if (this.open_ || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      signal?.addEventListener('abort', () => resolve(), { once: true });
    });
  }
}

/** A provider that yields `blocksPerPiece` 20 ms blocks per request, each waiting on its valve first. */
class CountingProvider implements TtsProvider {
  readonly name = 'counting';
  readonly voices = [{ id: 'v', language: 'en', provider: 'counting' }];
  readonly maxPieceChars = 200;
  readonly requests: SynthesisRequest[] = [];
  /** Blocks taken from the provider, over all requests. */
  pulls = 0;
  /** Requests whose iteration ended (normally, by failure, or abandoned). */
  released = 0;
  readonly valve = new Valve();
  blocksPerPiece = 3;
  /** Thrown before the block of this index (in each request). */
  failAt: { index: number; error: unknown } | null = null;
  /** A misbehaving provider: goes on yielding after its request was aborted. */
  ignoresAbort = false;

  async *synthesize(request: SynthesisRequest): AsyncIterable<PcmBlock> {
    this.requests.push(request);
    try {
      for (let i = 0; i < this.blocksPerPiece; i++) {
        if (i > 0) await this.valve.wait(this.ignoresAbort ? null : request.signal);
        if (this.failAt?.index === i) throw this.failAt.error;
        if (request.signal.aborted && !this.ignoresAbort) return;
        this.pulls++;
        yield { samples: new Int16Array(480).fill(i + 1), sampleRate: rate };
      }
    } finally {
      this.released++;
    }
  }
  ready = () => Promise.resolve();
  isReady = () => true;
  close = () => Promise.resolve();
}

function startJob(
  text: string,
  final: boolean,
  { provider = new CountingProvider(), route, writeAudio }: { provider?: CountingProvider; route?: VoiceRoute | null; writeAudio?: SynthesisOptions['writeAudio'] } = {},
) {
  const events: UpstreamEvent[] = [];
  const providerErrors: WireError[] = [];
  const outlet = new UtteranceOutlet(() => performance.now());
  let gone = 0;
  const resolved = route === null ? undefined : (route ?? { provider, providerVoice: 'v' });
  const job = new UtteranceJob(
    { sessionId: 's', lane: outlet, id: 'u', stream, voice: 'v', text, final, sampleRate: rate },
    resolved,
    {
      resolveVoice: () => resolved,
      chunkMs: 40,
      ...(writeAudio ? { writeAudio } : {}),
      onProviderError: (_, error) => providerErrors.push(error),
      onJobGone: () => gone++,
    },
    (event) => events.push(event),
  );
  let ran = false;
  void job.run().then(() => (ran = true));
  const types = () => events.map((e) => e.type);
  const count = (type: UpstreamEvent['type']) => types().filter((t) => t === type).length;
  return {
    job,
    provider,
    outlet,
    events,
    providerErrors,
    types,
    count,
    gone: () => gone,
    ran: () => ran,
    send: (cmd: UpstreamCommand) => job.command(cmd),
    /** Samples of audio sent back as events. */
    audioSamples: () => events.reduce((n, e) => n + (e.type === 'UPSTREAM_AUDIO' ? e.pcm.length : 0), 0),
    until: (what: string, predicate: () => boolean) => settle(predicate, 2_000, what),
  };
}

const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('UtteranceJob', () => {
  describe('text pieces', () => {
    it('speaks a long enough first sentence alone, then packs the rest into one request, in order, and ends once', async () => {
      const j = startJob('This first sentence is long enough. Second. Third one here.', true);
      await j.until('the end', j.ran);
      expect(j.provider.requests.map((r) => r.text)).toEqual(['This first sentence is long enough.', 'Second. Third one here.']);
      // Once audio went out, the utterance has started: a later piece is a continuation.
      expect(j.provider.requests.map((r) => r.continuation)).toEqual([false, true]);
      expect(j.types().filter((t) => t !== 'UPSTREAM_AUDIO')).toEqual(['UPSTREAM_DONE']);
      expect(j.audioSamples()).toBe(2 * 3 * 480);
      expect(j.provider.released).toBe(2);
    });

    it('joins a short first sentence with the complete sentences after it', async () => {
      const j = startJob('Hi. This is the rest of it.', true);
      await j.until('the end', j.ran);
      expect(j.provider.requests.map((r) => r.text)).toEqual(['Hi. This is the rest of it.']);
    });

    it('sends the first audio at once, however short, then whole 40 ms frames', async () => {
      const j = startJob('Hello there, this is one sentence.', true);
      await j.until('the end', j.ran);
      const frames = j.events.flatMap((e) => (e.type === 'UPSTREAM_AUDIO' ? [e.pcm.length] : []));
      expect(frames).toEqual([480, 960]);
    });

    it('passes frames through the outlet while it is open, numbered, and sends them as events while it is closed', async () => {
      const written: number[] = [];
      const provider = new CountingProvider();
      provider.valve.close();
      const j = startJob('Hello there, this is one sentence.', true, { provider, writeAudio: (_, s, seq) => written.push(seq) });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      j.outlet.open(); // what the speaker does on entering streaming.flowing
      provider.valve.open();
      await j.until('the end', j.ran);
      expect(j.count('UPSTREAM_AUDIO')).toBe(1);
      expect(written).toEqual([0]); // the first frame went as an event, unnumbered by the job; the rest passed
    });
  });

  describe('awaiting text', () => {
    it('speaks what it has, says it awaits text, and speaks the rest once it comes', async () => {
      const j = startJob('Hello there, this is a first sentence. ', false);
      await j.until('awaiting text', () => j.count('UPSTREAM_AWAITING_TEXT') === 1);
      expect(j.provider.requests).toHaveLength(1);
      expect(j.audioSamples()).toBe(3 * 480); // the piece played out before the wait
      j.send({ type: 'TEXT', text: ' And the rest.', final: true });
      await j.until('the end', j.ran);
      expect(j.provider.requests.map((r) => r.text)).toEqual(['Hello there, this is a first sentence.', 'And the rest.']);
      expect(j.types().filter((t) => t !== 'UPSTREAM_AUDIO')).toEqual(['UPSTREAM_AWAITING_TEXT', 'UPSTREAM_DONE']);
    });

    it('holds text without a sentence end until FLUSH (the session’s quiet period)', async () => {
      const j = startJob('No sentence end yet', false);
      await j.until('awaiting text', () => j.count('UPSTREAM_AWAITING_TEXT') === 1);
      expect(j.provider.requests).toHaveLength(0);
      j.send({ type: 'FLUSH' });
      await j.until('the flushed piece spoken', () => j.count('UPSTREAM_AWAITING_TEXT') === 2);
      expect(j.provider.requests.map((r) => r.text)).toEqual(['No sentence end yet']);
      j.send({ type: 'TEXT', text: '', final: true });
      await j.until('the end', j.ran);
      expect(j.count('UPSTREAM_DONE')).toBe(1);
    });
  });

  describe('pause and resume', () => {
    it('pulls nothing more from the provider while paused, and the rest after RESUME', async () => {
      const provider = new CountingProvider();
      provider.blocksPerPiece = 10;
      provider.valve.close();
      const j = startJob('Hello there, this is one sentence.', true, { provider });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      j.send({ type: 'PAUSE' });
      provider.valve.open();
      await ticks(20);
      // The block the provider had in hand when the pause came is taken; nothing after it.
      expect(provider.pulls).toBe(2);
      expect(j.ran()).toBe(false);
      j.send({ type: 'RESUME' });
      await j.until('the end', j.ran);
      expect(provider.pulls).toBe(10);
      expect(j.audioSamples()).toBe(10 * 480);
      expect(j.count('UPSTREAM_DONE')).toBe(1);
    });

    it('PAUSE and RESUME twice over are no different from once', async () => {
      const provider = new CountingProvider();
      provider.valve.close();
      const j = startJob('Hello there, this is one sentence.', true, { provider });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      j.send({ type: 'PAUSE' });
      j.send({ type: 'PAUSE' });
      j.send({ type: 'RESUME' });
      j.send({ type: 'RESUME' });
      provider.valve.open();
      await j.until('the end', j.ran);
      expect(j.audioSamples()).toBe(3 * 480);
    });
  });

  describe('cancel and release', () => {
    it('CANCEL three times: the provider lets go, UPSTREAM_RELEASED comes once (after it did), nothing else after', async () => {
      const provider = new CountingProvider();
      provider.blocksPerPiece = 10;
      provider.valve.close();
      const j = startJob('Hello there, this is one sentence. And a second one.', true, { provider });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      const releasedWhenSent: number[] = [];
      const audioBefore = j.audioSamples();
      j.send({ type: 'CANCEL' });
      j.send({ type: 'CANCEL' });
      j.send({ type: 'CANCEL' });
      j.events.push = ((push) =>
        function (this: UpstreamEvent[], ...e: UpstreamEvent[]) {
          if (e[0]?.type === 'UPSTREAM_RELEASED') releasedWhenSent.push(provider.released);
          return push.apply(this, e);
        })(j.events.push);
      await j.until('the release', () => j.count('UPSTREAM_RELEASED') === 1);
      await j.until('the run’s end', j.ran);
      expect(releasedWhenSent).toEqual([provider.requests.length]); // every request had let go
      j.send({ type: 'CANCEL' }); // and once more after it settled
      await ticks();
      expect(j.count('UPSTREAM_RELEASED')).toBe(1);
      expect(j.count('UPSTREAM_DONE') + j.count('UPSTREAM_ERROR')).toBe(0);
      expect(j.audioSamples()).toBe(audioBefore);
      expect(provider.requests.every((r) => r.signal.aborted)).toBe(true);
    });

    it('CANCEL after the job settled is answered at once, and only once', async () => {
      const j = startJob('Hello there, this is one sentence.', true);
      await j.until('the end', j.ran);
      expect(j.count('UPSTREAM_RELEASED')).toBe(0);
      for (let i = 0; i < 3; i++) j.send({ type: 'CANCEL' });
      expect(j.types().filter((t) => t !== 'UPSTREAM_AUDIO')).toEqual(['UPSTREAM_DONE', 'UPSTREAM_RELEASED']);
    });

    it('release() three times before the job settled: gone is reported once, once the provider let go', async () => {
      const provider = new CountingProvider();
      provider.valve.close();
      const j = startJob('Hello there, this is one sentence.', true, { provider });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      j.job.release();
      j.job.release();
      j.job.release();
      expect(j.gone()).toBe(0); // the provider has not let go yet (its abort is handled asynchronously)
      await j.until('gone', () => j.gone() === 1);
      expect(provider.released).toBe(1);
      j.job.release();
      await ticks();
      expect(j.gone()).toBe(1);
    });

    it('release() after the job settled reports gone at once, once', async () => {
      const j = startJob('Hello there, this is one sentence.', true);
      await j.until('the end', j.ran);
      expect(j.gone()).toBe(0);
      for (let i = 0; i < 3; i++) j.job.release();
      expect(j.gone()).toBe(1);
    });

    it('after release() nothing more is sent back: the owner has stopped listening', async () => {
      const provider = new CountingProvider();
      provider.valve.close();
      const j = startJob('Hello there, this is one sentence.', true, { provider });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      const sent = j.events.length;
      j.send({ type: 'CANCEL' }); // the speaker's stop…
      j.job.release(); // …then its release deadline, before the provider let go
      j.send({ type: 'CANCEL' });
      await j.until('gone', () => j.gone() === 1);
      await ticks();
      expect(j.events.length).toBe(sent);
    });

    it('no audio after a cancel, even from a provider that keeps yielding', async () => {
      const provider = new CountingProvider();
      provider.blocksPerPiece = 6;
      provider.ignoresAbort = true;
      provider.valve.close();
      const written: number[] = [];
      const j = startJob('Hello there, this is one sentence.', true, { provider, writeAudio: (_, s, seq) => written.push(seq) });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      j.outlet.open();
      j.send({ type: 'CANCEL' });
      provider.valve.open();
      await j.until('the release', () => j.count('UPSTREAM_RELEASED') === 1);
      expect(provider.pulls).toBeGreaterThan(1); // it did yield more…
      expect(j.count('UPSTREAM_AUDIO')).toBe(1); // …and none of it went anywhere
      expect(written).toEqual([]);
    });
  });

  describe('errors', () => {
    it('a provider failure ends the job once, with its code, and is reported to the engine', async () => {
      const provider = new CountingProvider();
      provider.failAt = { index: 1, error: new ProviderError('provider_timeout', 'upstream took too long', 1_500.2) };
      const j = startJob('Hello there, this is one sentence.', true, { provider });
      await j.until('the end', j.ran);
      expect(j.types()).toEqual(['UPSTREAM_AUDIO', 'UPSTREAM_ERROR']);
      const error = { code: 'provider_timeout', message: 'upstream took too long', retryAfterMs: 1_501 };
      expect(j.events[1]).toEqual({ type: 'UPSTREAM_ERROR', stream, reason: 'failed', error });
      expect(j.providerErrors).toEqual([error]);
      expect(provider.released).toBe(1);
    });

    it('anything else a provider throws is an internal error (its message is not passed on)', async () => {
      const provider = new CountingProvider();
      provider.failAt = { index: 0, error: new Error('secret detail') };
      const j = startJob('Hello there, this is one sentence.', true, { provider });
      await j.until('the end', j.ran);
      expect(j.events).toEqual([{ type: 'UPSTREAM_ERROR', stream, reason: 'failed', error: { code: 'internal', message: 'synthesis failed' } }]);
    });

    it('a voice no provider serves fails without a request', async () => {
      const j = startJob('Hello there, this is one sentence.', true, { route: null });
      await j.until('the end', j.ran);
      expect(j.events).toMatchObject([{ type: 'UPSTREAM_ERROR', error: { code: 'provider_unavailable' } }]);
      expect(j.provider.requests).toEqual([]);
      j.send({ type: 'TEXT', text: 'more', final: true }); // commands to a settled job are harmless
      j.send({ type: 'CANCEL' });
      expect(j.count('UPSTREAM_RELEASED')).toBe(1);
    });

    it('a failure after CANCEL is not reported: the utterance already ended', async () => {
      const provider = new CountingProvider();
      provider.valve.close();
      provider.ignoresAbort = true;
      provider.failAt = { index: 1, error: new ProviderError('provider_unavailable', 'gone away') };
      const j = startJob('Hello there, this is one sentence.', true, { provider });
      await j.until('the first audio', () => j.count('UPSTREAM_AUDIO') === 1);
      j.send({ type: 'CANCEL' });
      provider.valve.open();
      await j.until('the release', () => j.count('UPSTREAM_RELEASED') === 1);
      expect(j.count('UPSTREAM_ERROR')).toBe(0);
      expect(j.providerErrors).toEqual([]);
    });
  });
});

describe('UtteranceJob memory', () => {
  // A suspended async function keeps what its frame held (src/providers/iteration.ts): a block sent
  // on would stay alive for as long as the job waits on its provider for the next one.
  for (const textStream of [false, true]) {
    it(`lets go of a block it sent on while it waits for the next (${textStream ? 'one text stream' : 'text pieces'})`, async () => {
      const provider = new OneBlockProvider(textStream);
      const j = startJob('Hello there, this is one sentence.', true, { route: { provider, providerVoice: 'v' } });
      await j.until('the wait for a second block', () => provider.waiting && j.count('UPSTREAM_AUDIO') > 0);
      // A WeakRef keeps its target for the rest of the task that made it: collect in a later one.
      await new Promise((resolve) => setImmediate(resolve));
      gc();
      expect(provider.first!.deref()).toBeUndefined();
      j.send({ type: 'CANCEL' });
      await j.until('the release', () => j.count('UPSTREAM_RELEASED') === 1);
    });
  }
});
