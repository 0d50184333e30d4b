// Structured JSON logs (pino) of the engine's lifecycle: one line per event, carrying
// session and utterance ids. Never text content, never a credential.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import type { VoiceEngine } from '../engine/voiceEngine.js';

export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { service: 'voxline' } }, destination ?? process.stdout);
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
  engine.on('sessionStarted', onSessionStarted);
  engine.on('sessionEnded', onSessionEnded);
  engine.on('utteranceAccepted', onAccepted);
  engine.on('utteranceEnded', onEnded);
  engine.on('providerError', onProviderError);
  engine.on('providerCircuit', onCircuit);
  return () => {
    engine.off('sessionStarted', onSessionStarted);
    engine.off('sessionEnded', onSessionEnded);
    engine.off('utteranceAccepted', onAccepted);
    engine.off('utteranceEnded', onEnded);
    engine.off('providerError', onProviderError);
    engine.off('providerCircuit', onCircuit);
  };
}
