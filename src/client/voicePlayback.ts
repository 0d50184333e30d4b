// Glue between VoiceClient and AudioStreamPlayer: streams start, play and end on the
// server's explicit signals, STOP (and a barge-in's `interrupted`) silences locally at once,
// and "speaking" is true exactly while some accepted utterance has not finished playing. A
// dropped connection silences everything and clears "speaking" (its utterances can no longer
// end on the wire).
import { AudioStreamPlayer, type PlaybackFinished } from './audioStreamPlayer.js';
import type { VoiceClient, SpeakOptions } from './voiceClient.js';

export class VoicePlayback {
  private readonly modes = new Map<string, 'interrupt' | 'enqueue'>();
  private readonly unfinished = new Set<number>();
  private readonly listeners = new Set<(speaking: boolean) => void>();
  private readonly finishedListeners = new Set<(event: PlaybackFinished & { id: string | undefined }) => void>();
  private readonly idOf = new Map<number, string>();

  constructor(
    readonly client: VoiceClient,
    readonly player: AudioStreamPlayer,
  ) {
    client.on('accepted', ({ id, stream }) => {
      const mode = this.modes.get(id) ?? 'interrupt';
      this.modes.delete(id);
      this.idOf.set(stream, id);
      this.unfinished.add(stream);
      player.begin(stream, mode === 'interrupt');
      this.changed();
    });
    client.on('audio', ({ stream, pcm }) => player.push(stream, pcm));
    client.on('end', ({ stream, reason }) => {
      // Cut short on the server: what is still scheduled must not be heard. Only `completed`,
      // `failed` and `timeout` let the audio already here play out.
      if (reason === 'stopped' || reason === 'superseded' || reason === 'interrupted') {
        if (player.stream === stream) player.stop();
      }
      player.end(stream);
    });
    client.on('error', ({ id }) => {
      if (id !== undefined) this.modes.delete(id);
    });
    client.on('state', ({ state }) => {
      if (state !== 'ready') {
        player.stop();
        this.unfinished.clear();
        this.changed();
      }
    });
    player.onFinished((event) => {
      const id = this.idOf.get(event.stream);
      this.idOf.delete(event.stream);
      this.unfinished.delete(event.stream);
      for (const l of this.finishedListeners) l({ ...event, id });
      this.changed();
    });
  }

  get speaking(): boolean {
    return this.unfinished.size > 0;
  }

  speak(text: string, options: SpeakOptions = {}): string {
    const id = this.client.speak(text, options);
    this.modes.set(id, options.mode ?? 'interrupt');
    return id;
  }

  /** STOP is local first: silence now, then tell the server. */
  stop(): void {
    this.player.stop();
    this.client.stop();
  }

  onSpeaking(listener: (speaking: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onFinished(listener: (event: PlaybackFinished & { id: string | undefined }) => void): () => void {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }

  private last = false;
  private changed(): void {
    const now = this.speaking;
    if (now === this.last) return;
    this.last = now;
    for (const l of this.listeners) l(now);
  }
}
