// The provider SDK clients as voxline builds them (src/providers/sdkClients.ts), driven through the
// real groq-sdk and openai packages: what reaches `fetch` when a request is stopped or times out,
// and, over real sockets, what a redirecting upstream gets.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Groq from 'groq-sdk';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { sdkClient } from '../../src/providers/sdkClients.js';
import { ProviderError } from '../../src/providers/types.js';

interface Seen {
  init: RequestInit;
}

/** A fetch that records what it was given and never answers until its signal aborts. */
function hangingFetch(seen: Seen[]) {
  return (_url: string | URL | Request, init?: RequestInit): Promise<Response> =>
    new Promise((_resolve, reject) => {
      seen.push({ init: init ?? {} });
      const signal = init?.signal;
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
}

/** Built by sdkClient, as src/ builds them; the SDK's own `fetch` option points it at `hangingFetch`. */
const clients = {
  groq: (seen: Seen[], timeout = 60_000) => {
    class Recorded extends Groq {
      constructor(options: ConstructorParameters<typeof Groq>[0]) {
        super({ ...options, fetch: hangingFetch(seen) });
      }
    }
    return sdkClient(Recorded, { apiKey: 'test', baseURL: 'http://127.0.0.1:9', timeoutMs: timeout });
  },
  openai: (seen: Seen[], timeout = 60_000) => {
    class Recorded extends OpenAI {
      constructor(options: ConstructorParameters<typeof OpenAI>[0]) {
        super({ ...options, fetch: hangingFetch(seen) });
      }
    }
    return sdkClient(Recorded, { apiKey: 'test', baseURL: 'http://127.0.0.1:9', timeoutMs: timeout, quiet: true });
  },
};

const speak = (client: Groq | OpenAI, signal?: AbortSignal) =>
  (client as Groq).audio.speech.create({ model: 'm', input: 'hi', voice: 'autumn', response_format: 'wav' }, signal ? { signal } : {});

describe.each(Object.entries(clients))('%s client', (_name, make) => {
  it('asks fetch not to follow redirects (no clone of the request per call)', async () => {
    const seen: Seen[] = [];
    const stop = new AbortController();
    const request = speak(make(seen), stop.signal).catch((e: unknown) => e);
    await expect.poll(() => seen.length).toBe(1);
    expect(seen[0]!.init.redirect).toBe('error');
    stop.abort(new Error('done'));
    await request;
  });

  it("a stopped request's fetch is aborted with the caller's own reason, not a new DOMException", async () => {
    const seen: Seen[] = [];
    const reason = new DOMException('the utterance released its upstream', 'AbortError');
    const stop = new AbortController();
    const request = speak(make(seen), stop.signal).catch((e: unknown) => e);
    await expect.poll(() => seen.length).toBe(1);
    stop.abort(reason);
    await request;
    expect(seen[0]!.init.signal!.aborted).toBe(true);
    expect(seen[0]!.init.signal!.reason).toBe(reason);
  });

  it("the SDK's own timeout still aborts the request", async () => {
    const seen: Seen[] = [];
    const outcome = await speak(make(seen, 50)).catch((e: unknown) => e);
    expect(seen[0]!.init.signal!.aborted).toBe(true);
    expect((seen[0]!.init.signal!.reason as Error).name).toBe('AbortError');
    expect(String(outcome)).toMatch(/timed out/i);
  });
});

describe('a redirecting upstream, over real sockets', () => {
  const servers: Server[] = [];
  const listen = async (server: Server) => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  it('is not followed: the piece fails as provider_unavailable and the key never reaches the target', async () => {
    const reached: string[] = [];
    const target = await listen(createServer((req, res) => { reached.push(String(req.headers.authorization)); res.end(); }));
    const redirecting = await listen(
      createServer((req, res) => {
        req.resume();
        res.writeHead(307, { location: `${target}/openai/v1/audio/speech` }).end();
      }),
    );
    const provider = groqProvider({ apiKey: 'gsk_test_not_a_real_key', baseURL: redirecting });
    const blocks = provider.synthesize({ text: 'Hello.', voice: 'troy', signal: new AbortController().signal });
    const failure = await (async () => {
      for await (const _ of blocks) return null;
      return null;
    })().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ProviderError);
    expect((failure as ProviderError).code).toBe('provider_unavailable');
    expect(reached).toEqual([]);
    await provider.close();
  });

  afterAll(() => {
    for (const server of servers) server.close();
  });
});
