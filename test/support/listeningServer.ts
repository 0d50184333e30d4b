// A voxline server that listens, for integration tests over real sockets: the embedded voice,
// createListening's real parts (options passed through), the speech renderer that makes the
// user's voice, and the check that every session let go of what it held.
import { expect } from 'vitest';
import type { VoiceEngineOptions } from '../../src/engine/voiceEngine.js';
import { createListening, type ListeningConfig, type ListeningSetup } from '../../src/listening/listening.js';
import { espeakProvider } from '../../src/providers/espeak/espeakProvider.js';
import { createVoxlineServer, type VoxlineServer } from '../../src/server/voxlineServer.js';
import { settle } from './settle.js';
import { defaultAdmissionPolicy } from '../../src/engine/admission.js';
import { bytesOf } from './listeningStandIns.js';
import { frames, speechRenderer, type SpeechRenderer } from './speechAudio.js';

export interface ListeningServer {
  voxline: VoxlineServer;
  /** The voice endpoint, ws://… */
  url: string;
  speech: SpeechRenderer;
  /** What createListening made (its summary, the recognizers the engine owns now). */
  listening: ListeningSetup;
  /** Every session ended and released its listener, recognition jobs and detector backlog. */
  released(extra?: () => boolean): Promise<void>;
  close(): Promise<void>;
}

export async function startListeningServer(
  listening: ListeningConfig = {},
  engine: Partial<VoiceEngineOptions> = {},
): Promise<ListeningServer> {
  // Tests send audio faster than real time unless they say otherwise: the gate's budget is its own test.
  const setup = await createListening({ micInput: { burstMs: 600_000 }, ...listening });
  expect(setup.options, setup.summary).not.toBeNull();
  const voxline = createVoxlineServer({ providers: [espeakProvider({ size: 2 })], ...engine, listen: setup.options! });
  const url = `${(await voxline.listen(0, '127.0.0.1')).url.replace('http', 'ws')}/v1/voice`;
  await voxline.engine.ready();
  const speech = await speechRenderer();
  return {
    voxline,
    url,
    speech,
    listening: setup,
    released: (extra = () => true) =>
      settle(() => {
        const s = voxline.engine.stats();
        return s.sessions === 0 && s.listening.listeners === 0 && s.listening.recognitionJobs === 0 && s.listening.vadBacklogMs === 0 && extra();
      }, 5_000, 'listening released'),
    async close() {
      await speech.close();
      await voxline.close();
    },
  };
}

/** The server's microphone frame budget (frames a second): what a test sending faster than real time must stay under. */
const micFramesPerSecond = defaultAdmissionPolicy.micFramesPerSecond;

/**
 * Sends `pcm` as microphone frames of `frameMs`, faster than real time but never faster than
 * the frame budget (one frame per 1/micFramesPerSecond s): a test about hearing is not a flood.
 */
export async function sendMic(ws: { send(data: ArrayBuffer | Uint8Array): void }, pcm: Int16Array, frameMs = 100): Promise<void> {
  for (const f of frames(pcm, frameMs)) {
    ws.send(bytesOf(f));
    await new Promise((r) => setTimeout(r, Math.ceil(1000 / micFramesPerSecond)));
  }
}
