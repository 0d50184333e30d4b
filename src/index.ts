// Public API of the voxline package.
export { attachVoxline, createVoxlineServer } from './server/voxlineServer.js';
export type { AttachedVoxline, VoxlineOptions, VoxlineServer } from './server/voxlineServer.js';
export { VoiceEngine } from './engine/voiceEngine.js';
export type { EngineStats, UtteranceEndedEvent, VoiceEngineOptions } from './engine/voiceEngine.js';
export { createSynthesisLogic, UtteranceJob } from './engine/synthesisActor.js';
export { espeakProvider, EspeakProvider, espeakVoices } from './providers/espeak/espeakProvider.js';
export { ProviderError } from './providers/types.js';
export type { PcmBlock, SynthesisRequest, TtsProvider } from './providers/types.js';
export { encodeAudioFrame, decodeAudioFrame } from './protocol/audioFrame.js';
export { parseClientMessage, ProtocolError } from './protocol/clientMessages.js';
export { sessionMachine } from '../machines/session.machine.js';
export * from '../machines/types.js';
