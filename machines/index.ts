export { sessionMachine } from './session.machine.js';
export type { SessionMachine, SessionInput, SessionContext, AudioOut, CloseRequest } from './session.machine.js';
export * from './types.js';
export { sessionPhase, statePath } from './sessionPhase.js';
