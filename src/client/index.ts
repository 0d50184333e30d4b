// voxline's browser module: `VoiceClient` (the wire protocol) and `AudioStreamPlayer`
// (timeline playback), with `VoicePlayback` wiring the two together.
export { VoiceClient } from './voiceClient.js';
export type { ConnectionState, SpeakOptions, VoiceClientEvents, VoiceClientOptions } from './voiceClient.js';
export { AudioStreamPlayer } from './audioStreamPlayer.js';
export type { AudioStreamPlayerOptions, PlaybackFinished } from './audioStreamPlayer.js';
export { VoicePlayback } from './voicePlayback.js';
