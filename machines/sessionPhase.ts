// A session snapshot as one phase a person can follow (idle → connecting → streaming →
// stopping …) plus the full state path, for clients that observe the statechart.
import type { SnapshotFrom } from 'xstate';
import type { sessionMachine } from './session.machine.js';
import type { SessionPhase } from './types.js';

export function sessionPhase(snapshot: SnapshotFrom<typeof sessionMachine>): { state: SessionPhase; path: string } {
  const path = snapshot.status === 'done' ? 'ended' : statePath(snapshot.value);
  const phase: SessionPhase = snapshot.matches('handshake')
    ? 'handshake'
    : snapshot.matches('idle')
      ? 'idle'
      : snapshot.matches({ active: { live: 'connecting' } })
        ? 'connecting'
        : snapshot.matches({ active: { live: { streaming: 'paused' } } })
          ? 'paused'
          : snapshot.matches({ active: { live: { streaming: 'awaitingText' } } })
            ? 'awaitingText'
            : snapshot.matches({ active: { live: 'streaming' } })
              ? 'streaming'
              : snapshot.matches({ active: 'stopping' })
                ? 'stopping'
                : snapshot.matches({ active: 'releasing' })
                  ? 'releasing'
                  : 'ended';
  return { state: phase, path };
}

/** A state value as a dotted path (`active.live.streaming.flowing`). */
export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [key, child] = Object.entries(value as Record<string, unknown>)[0] ?? [];
    if (key === undefined) return '';
    const rest = statePath(child);
    return rest ? `${key}.${rest}` : key;
  }
  return '';
}
