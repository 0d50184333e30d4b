// What every session of one engine shares, derived once per engine (not once per session) and
// handed to each connection in its input. Both values are read-only, so sharing them is safe.
import { defaultSessionLimits, type SessionLimits, type VoiceInfo } from '../../machines/types.js';

/** The names a session may use for a voice: its id, or `provider:id` to pick the provider explicitly. */
export function voiceIdsOf(voices: readonly VoiceInfo[]): ReadonlySet<string> {
  return new Set(voices.flatMap((v) => [v.id, `${v.provider}:${v.id}`]));
}

/** The configured limits over the defaults (the defaults object itself when nothing is configured). */
export function sessionLimits(given: Partial<SessionLimits> | undefined): SessionLimits {
  return given ? { ...defaultSessionLimits, ...given } : defaultSessionLimits;
}
