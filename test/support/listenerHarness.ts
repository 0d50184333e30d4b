// Runs the pure listener chart on a media clock the test advances, with a scripted recognition
// job per turn, recording everything it reports. Frames are sent the way the host sends them:
// the VOICE event at the frame's start, then the clock crosses the frame.
import { createActor, fromCallback } from 'xstate';
import { listenerMachine, type RecognitionInput } from '../../machines/listener.machine.js';
import { defaultListenLimits, type ListenLimits, type ListenerReport, type RecognitionCommand, type RecognitionEvent } from '../../machines/types.js';
import { MediaClock } from '../../src/listening/mediaClock.js';

export interface ScriptedJob {
  input: RecognitionInput;
  commands: RecognitionCommand['type'][];
  sendBack: (event: RecognitionEvent) => void;
  cleanedUp: boolean;
}

export const loud = -20;
export const quietDb = -90;

export function createListenerHarness(limits: Partial<ListenLimits> = {}, options: { interruptions?: boolean } = {}) {
  const clock = new MediaClock();
  const reports: ListenerReport[] = [];
  const jobs: ScriptedJob[] = [];
  const machine = listenerMachine.provide({
    actions: { report: (_, report) => reports.push(report) },
    actors: {
      recognition: fromCallback<RecognitionCommand, RecognitionInput>(({ input, sendBack, receive }) => {
        const job: ScriptedJob = { input, commands: [], sendBack: sendBack as (e: RecognitionEvent) => void, cleanedUp: false };
        jobs.push(job);
        receive((command) => job.commands.push(command.type));
        return () => {
          job.cleanedUp = true;
        };
      }),
    },
  });
  const errors: unknown[] = [];
  const actor = createActor(machine, {
    clock,
    input: { limits: { ...defaultListenLimits, ...limits }, now: () => clock.now(), interruptions: options.interruptions ?? true },
  });
  actor.subscribe({ error: (e) => errors.push(e) });
  actor.start();

  const frame = (speech: boolean, durationMs: number, levelDb: number) => {
    if (actor.getSnapshot().status !== 'active') return clock.advance(durationMs);
    actor.send({ type: 'VOICE', speech, levelDb, durationMs });
    clock.advance(durationMs);
  };
  /** `ms` of frames of `frameMs` (the last may be shorter). */
  const run = (speech: boolean, ms: number, levelDb: number, frameMs: number) => {
    for (let left = ms; left > 0; left -= frameMs) frame(speech, Math.min(frameMs, left), levelDb);
  };
  return {
    actor,
    clock,
    reports,
    jobs,
    errors,
    speech: (ms: number, { levelDb = loud, frameMs = 10 } = {}) => run(true, ms, levelDb, frameMs),
    silence: (ms: number, { frameMs = 10 } = {}) => run(false, ms, quietDb, frameMs),
    send: (event: Parameters<typeof actor.send>[0]) => {
      if (actor.getSnapshot().status === 'active') actor.send(event);
    },
    /** The live job (its actor not cleaned up). */
    liveJob: () => jobs.find((j) => !j.cleanedUp),
    types: () => reports.map((r) => r.type),
    in: (state: Parameters<ReturnType<typeof actor.getSnapshot>['matches']>[0]) => actor.getSnapshot().matches(state),
  };
}

export type ListenerHarness = ReturnType<typeof createListenerHarness>;
