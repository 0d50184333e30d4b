// Structured JSON logs (pino) of the engine's lifecycle: one line per event, carrying
// session and utterance ids. Never text content, never a credential.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import type { VoiceEngine } from '../engine/voiceEngine.js';

export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { service: 'voxline', ...bindings } }, destination ?? process.stdout);
}

/** Log every lifecycle event of `engine`; returns a function that stops logging. */
export function logEngine(engine: VoiceEngine, log: Logger): () => void {
  const onSessionStarted = ({ sessionId }: { sessionId: string }) => log.info({ event: 'session.start', sessionId });
  const onSessionEnded = ({ sessionId }: { sessionId: string }) => log.info({ event: 'session.end', sessionId });
  const onAccepted: Parameters<typeof engine.on<'utteranceAccepted'>>[1] = (u) =>
    log.info({ event: 'utterance.accepted', sessionId: u.sessionId, utteranceId: u.id, stream: u.stream, voice: u.voice, mode: u.mode });
  const onEnded: Parameters<typeof engine.on<'utteranceEnded'>>[1] = (u) =>
    log.info({
      event: 'utterance.end',
      sessionId: u.sessionId,
      utteranceId: u.id,
      stream: u.stream,
      reason: u.reason,
      cause: u.cause,
      ...(u.error ? { code: u.error.code } : {}),
      firstAudioMs: u.stats.firstAudioMs,
      durationMs: u.stats.durationMs,
      bytes: u.stats.bytes,
    });
  const onProviderError: Parameters<typeof engine.on<'providerError'>>[1] = (e) =>
    log.warn({ event: 'provider.error', provider: e.provider, code: e.error.code, message: e.error.message });
  const onCircuit: Parameters<typeof engine.on<'providerCircuit'>>[1] = (e) =>
    log[e.state === 'open' ? 'warn' : 'info']({ event: 'provider.circuit', provider: e.provider, state: e.state });
  const listeners = [
    ['sessionStarted', onSessionStarted],
    ['sessionEnded', onSessionEnded],
    ['utteranceAccepted', onAccepted],
    ['utteranceEnded', onEnded],
    ['providerError', onProviderError],
    ['providerCircuit', onCircuit],
  ] as const;
  // The engine's typed `on` cannot take a union of event names; each pair above is typed where it is built.
  const untyped = engine as unknown as { on(e: string, l: unknown): void; off(e: string, l: unknown): void };
  for (const [event, listener] of listeners) untyped.on(event, listener);
  return () => {
    for (const [event, listener] of listeners) untyped.off(event, listener);
  };
}
