export { connectionMachine } from './connection.machine.js';
export type { ConnectionMachine, ConnectionInput, ConnectionContext } from './connection.machine.js';
export { speakerMachine } from './speaker.machine.js';
export type { SpeakerMachine, SpeakerInput, SpeakerContext, SpeakerOutput, AudioOut } from './speaker.machine.js';
export { errorTable, closeRequest, wireError, CloseCode, type CloseRequest, type ErrorSpec } from './errors.js';
export * from './types.js';
export { sessionPhase, statePath } from './sessionPhase.js';
