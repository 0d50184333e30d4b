// A session as one phase a person can follow (idle → connecting → streaming → stopping …)
// plus the full state path, for clients that observe the statechart. The phase comes from
// the connection while it has no speaker (handshake, ended) and from the speaker otherwise;
// the path is the speaker's own (`active.live.streaming.flowing`).
import type { ActorRefFrom, SnapshotFrom } from 'xstate';
import type { ConnectionMachine } from './connection.machine.js';
import type { SpeakerMachine } from './speaker.machine.js';
import type { SessionPhase } from './types.js';

export interface Phase {
  state: SessionPhase;
  path: string;
}

const handshake: Phase = { state: 'handshake', path: 'handshake' };
const ended: Phase = { state: 'ended', path: 'ended' };
const idle: Phase = { state: 'idle', path: 'idle' };

/** The session's phase, or null while the connection is closing (it ends within the same step). */
export function sessionPhase(snapshot: SnapshotFrom<ConnectionMachine>): Phase | null {
  if (snapshot.status === 'done') return ended;
  if (snapshot.matches('handshake')) return handshake;
  if (snapshot.matches({ open: { speech: 'quiet' } })) return idle;
  if (!snapshot.matches({ open: { speech: { speaking: 'serving' } } })) return null;
  const speaker = speakerOf(snapshot)?.getSnapshot();
  return speaker && speaker.status === 'active' ? speakerPhase(speaker) : null;
}

/** The running speaker of a connection, if it has one. */
export function speakerOf(snapshot: SnapshotFrom<ConnectionMachine>) {
  return (snapshot.children as { speaker?: ActorRefFrom<SpeakerMachine> }).speaker;
}

export function speakerPhase(snapshot: SnapshotFrom<SpeakerMachine>): Phase {
  if (snapshot.status === 'done') return ended;
  const path = statePath(snapshot.value);
  const phase: SessionPhase = snapshot.matches('idle')
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
