// voxline servers over a Groq emulator for one test file: the emulator starts before the
// file's tests and everything started here is closed after them.
import { afterAll, beforeAll } from 'vitest';
import { GroqEmulator } from '../../src/emulators/groqEmulator.js';
import { groqProvider } from '../../src/providers/groq/groqProvider.js';
import { createVoxlineServer, type VoxlineOptions, type VoxlineServer } from '../../src/server/voxlineServer.js';

export function useGroqServers() {
  let emulator: GroqEmulator | undefined;
  const servers: VoxlineServer[] = [];
  beforeAll(async () => {
    emulator = new GroqEmulator({ apiKey: 'upstream' });
    await emulator.listen();
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await emulator?.close();
  });
  return {
    /** The emulator (once the file's tests run). */
    emulator: () => emulator!,
    /** Close `server` with the others after the file's tests. */
    track: (server: VoxlineServer) => servers.push(server),
    /** A server on a free port of 127.0.0.1 speaking through the emulator. */
    async start(options: VoxlineOptions = {}) {
      const server = createVoxlineServer({ providers: [groqProvider({ apiKey: 'upstream', baseURL: emulator!.url })], ...options });
      servers.push(server);
      const { url, port } = await server.listen(0, '127.0.0.1');
      return { server, http: url, port, ws: `${url.replace(/^http/, 'ws')}/v1/voice` };
    },
  };
}
