// Which model the environment selects, and that no key reaches the start-up summary.
import { describe, expect, it } from 'vitest';
import { createChatModelFromEnv } from '../../src/config/chatModelFromEnv.js';
import { ConfigError } from '../../src/config/providerRegistry.js';

describe('createChatModelFromEnv', () => {
  it('selects echo, Groq, OpenAI or an endpoint, in that order of absence', async () => {
    expect((await createChatModelFromEnv({})).model.name).toBe('echo');
    expect((await createChatModelFromEnv({ GROQ_API_KEY: 'gsk_secret' })).model.name).toBe('groq:llama-3.3-70b-versatile');
    expect((await createChatModelFromEnv({ GROQ_API_KEY: 'gsk_secret', VOXLINE_CHAT_MODEL: 'llama-3.1-8b-instant' })).model.name).toBe('groq:llama-3.1-8b-instant');
    expect((await createChatModelFromEnv({ OPENAI_API_KEY: 'sk-secret' })).model.name).toBe('openai:gpt-4o-mini');
    const endpoint = await createChatModelFromEnv({ GROQ_API_KEY: 'gsk_secret', VOXLINE_CHAT_BASE_URL: 'http://127.0.0.1:11434/v1', VOXLINE_CHAT_MODEL: 'llama3.2' });
    expect(endpoint.model.name).toBe('openai:llama3.2');
    expect(endpoint.summary).toBe('openai:llama3.2 at http://127.0.0.1:11434');
    expect((await createChatModelFromEnv({ GROQ_API_KEY: 'gsk_secret', VOXLINE_CHAT: 'echo' })).model.name).toBe('echo');
    for (const setup of [await createChatModelFromEnv({ GROQ_API_KEY: 'gsk_secret' }), await createChatModelFromEnv({ OPENAI_API_KEY: 'sk-secret' })]) {
      expect(setup.summary).not.toMatch(/secret/);
    }
  });

  it('refuses what cannot work, with one clear line', async () => {
    await expect(createChatModelFromEnv({ VOXLINE_CHAT_BASE_URL: 'http://127.0.0.1:11434/v1' })).rejects.toThrow(ConfigError);
    await expect(createChatModelFromEnv({ VOXLINE_CHAT_BASE_URL: 'http://user:pw@host/v1', VOXLINE_CHAT_MODEL: 'm' })).rejects.toThrow(/credentials/);
    await expect(createChatModelFromEnv({ VOXLINE_CHAT_BASE_URL: 'ftp://host', VOXLINE_CHAT_MODEL: 'm' })).rejects.toThrow(ConfigError);
    await expect(createChatModelFromEnv({ VOXLINE_CHAT: 'groq' })).rejects.toThrow(/GROQ_API_KEY/);
    await expect(createChatModelFromEnv({ VOXLINE_CHAT: 'claude' })).rejects.toThrow(ConfigError);
    await expect(createChatModelFromEnv({ VOXLINE_CHAT_MAX_TOKENS: '0' })).rejects.toThrow(/VOXLINE_CHAT_MAX_TOKENS/);
    await expect(createChatModelFromEnv({ VOXLINE_CHAT_TEMPERATURE: '3' })).rejects.toThrow(/VOXLINE_CHAT_TEMPERATURE/);
    await expect(createChatModelFromEnv({ VOXLINE_CHAT_FIRST_TOKEN_MS: 'soon' })).rejects.toThrow(/VOXLINE_CHAT_FIRST_TOKEN_MS/);
  });

  it('offline (VOXLINE_EMULATORS=1): Groq chat against a local emulator that answers', async () => {
    const setup = await createChatModelFromEnv({ VOXLINE_EMULATORS: '1' });
    try {
      expect(setup.summary).toMatch(/^groq:llama-3.3-70b-versatile \(emulator http:\/\/127\.0\.0\.1:\d+\)$/);
      let reply = '';
      for await (const d of setup.model.stream({ messages: [{ role: 'user', content: 'hello emulator' }], signal: new AbortController().signal })) reply += d;
      expect(reply).toBe('hello emulator');
    } finally {
      await setup.close();
      await setup.close(); // idempotent
    }
  });
});
