// The provider registry is the one place a provider is named: the CLI's help and validation
// and the provider setup all follow it.
import { describe, expect, it } from 'vitest';
import { parseCommand, usage } from '../../src/cli/config.js';
import { providerNames, providerRegistry } from '../../src/config/providerRegistry.js';
import { providersFromEnv } from '../../src/config/providersFromEnv.js';

describe('provider registry', () => {
  it('the help names every provider and --providers accepts exactly them', () => {
    for (const name of providerNames) expect(usage).toContain(name);
    for (const entry of providerRegistry) {
      const env = entry.keyEnv ? { [entry.keyEnv]: 'k' } : {};
      expect(() => parseCommand(['--providers', entry.name], env)).not.toThrow();
      if (entry.keyEnv) expect(() => parseCommand(['--providers', entry.name], {})).toThrow(entry.keyEnv);
    }
    expect(() => parseCommand(['--providers', 'polly'], {})).toThrow(/unknown provider "polly"/);
  });

  it('a provider whose key is not set is not started; with emulators every provider runs offline', async () => {
    const plain = await providersFromEnv({}, { espeakWorkers: 1 });
    expect(plain.providers.map((p) => p.name)).toEqual(providerRegistry.filter((e) => !e.keyEnv).map((e) => e.name));
    await Promise.all(plain.providers.map((p) => p.close()));
    await plain.close();
    const offline = await providersFromEnv({}, { espeakWorkers: 1, emulators: true });
    try {
      expect(offline.providers.map((p) => p.name)).toEqual(providerNames);
      expect(offline.summary).toHaveLength(providerNames.length);
    } finally {
      await Promise.all(offline.providers.map((p) => p.close()));
      await offline.close();
    }
  });
});
