// voxline's browser module: `VoiceClient` (the wire protocol) and `AudioStreamPlayer`
// (timeline playback), with `VoicePlayback` wiring the two together; `VoiceAgent` adds the
// microphone (`Microphone`, an AudioWorklet making 16 kHz frames) to talk to the server's agent.
export { VoiceClient } from './voiceClient.js';
export type { ConnectionState, ListenRequestOptions, SpeakOptions, VoiceClientEvents, VoiceClientOptions } from './voiceClient.js';
export type { AgentSettings, TurnStatus } from '../../machines/types.js';
export { AudioStreamPlayer } from './audioStreamPlayer.js';
export type { AudioStreamPlayerOptions, PlaybackFinished } from './audioStreamPlayer.js';
export { VoicePlayback } from './voicePlayback.js';
export { VoiceAgent } from './voiceAgent.js';
export type { MicrophoneState, TalkMode, VoiceAgentEvents, VoiceAgentOptions } from './voiceAgent.js';
export { Microphone, microphoneConstraints } from './microphone.js';
export type { MicrophoneOptions } from './microphone.js';
