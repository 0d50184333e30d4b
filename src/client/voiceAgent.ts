// Talking to the server's agent from a browser: one session that listens (the microphone,
// captured as 20 ms frames of 16 kHz PCM) and speaks (the replies, played through
// AudioStreamPlayer), hands-free or push-to-talk. The server decides what a turn is and when
// a reply is cut short; this side plays what it is sent, drops it the moment a reply ends
// `interrupted` or `stopped`, and reports how much it actually played, so the server knows
// what the user heard.
import { AudioStreamPlayer, type PlaybackFinished } from './audioStreamPlayer.js';
import { Microphone } from './microphone.js';
import type { AgentSettings } from '../../machines/types.js';
import { VoiceClient, type ListenRequestOptions, type VoiceClientEvents, type VoiceClientOptions } from './voiceClient.js';
import { VoicePlayback } from './voicePlayback.js';

/** Hands-free: the microphone is always heard. Push-to-talk: only while held; release ends the speech. */
export type TalkMode = 'hands-free' | 'push-to-talk';

/** `live`: frames go up; `muted`: push-to-talk not held; `failed`: no microphone (denied, none, closed). */
export type MicrophoneState = 'off' | 'opening' | 'live' | 'muted' | 'failed';

export interface VoiceAgentOptions extends Pick<VoiceClientOptions, 'url' | 'token' | 'voice' | 'observe' | 'reconnect' | 'maxQueuedAudioBytes'> {
  /** What the agent is told (`false`: listen only, transcripts without replies). Default `{}`. */
  agent?: AgentSettings | false;
  /** Listening hints; the microphone format is always 16 kHz PCM unless the server grants another rate. */
  listen?: Omit<ListenRequestOptions, 'format'>;
  mode?: TalkMode;
  /** Playback context, at the PCM rate (default: a new one at `sampleRate`, closed by close()). */
  context?: AudioContext;
  /** The replies' PCM rate (default 24 000; a given `context` decides it). */
  sampleRate?: number;
  /** Where replies play (default: the context's destination). */
  destination?: AudioNode;
  /** Playback jitter buffer (default 60 ms). */
  jitterMs?: number;
  /** How often a playing reply's position is reported (default 250 ms); it is also reported when it finishes. */
  playbackReportMs?: number;
  /** Extra microphone constraints (echo cancellation, noise suppression and auto gain stay on unless overridden). */
  microphone?: MediaTrackConstraints;
}

export interface VoiceAgentEvents extends VoiceClientEvents {
  /** A reply is playing (from its speak.accepted until it finished playing or was cut). */
  speaking: { speaking: boolean };
  microphone: { state: MicrophoneState; error?: string };
  /** A reply finished playing: all of it, or cut (`playedMs` is what was heard). */
  finished: PlaybackFinished & { id: string | undefined };
}

type Listener<K extends keyof VoiceAgentEvents> = (event: VoiceAgentEvents[K]) => void;
type OwnEvent = 'speaking' | 'microphone' | 'finished';
const ownEvents = new Set<keyof VoiceAgentEvents>(['speaking', 'microphone', 'finished']);

export class VoiceAgent {
  readonly client: VoiceClient;
  readonly player: AudioStreamPlayer;
  readonly playback: VoicePlayback;
  readonly context: AudioContext;
  private readonly ownsContext: boolean;
  private readonly options: VoiceAgentOptions;
  private readonly listeners = new Map<OwnEvent, Set<Listener<never>>>();
  private readonly offs: (() => void)[] = [];
  private mic: Microphone | null = null;
  private starting: Promise<void> | null = null;
  private reportTimer: ReturnType<typeof setInterval> | null = null;
  /** The last position reported per stream, so an unchanged one is not sent again; emptied as streams finish. */
  private readonly reported = new Map<number, number>();
  private closed = false;
  private held = false;
  mode: TalkMode;
  microphone: MicrophoneState = 'off';

  constructor(options: VoiceAgentOptions = {}) {
    this.options = options;
    this.mode = options.mode ?? 'hands-free';
    this.ownsContext = !options.context;
    this.context = options.context ?? new AudioContext({ sampleRate: options.sampleRate ?? 24_000, latencyHint: 'interactive' });
    this.client = new VoiceClient({
      ...(options.url ? { url: options.url } : {}),
      ...(options.token ? { token: options.token } : {}),
      ...(options.voice ? { voice: options.voice } : {}),
      ...(options.observe ? { observe: true } : {}),
      ...(options.reconnect !== undefined ? { reconnect: options.reconnect } : {}),
      ...(options.maxQueuedAudioBytes !== undefined ? { maxQueuedAudioBytes: options.maxQueuedAudioBytes } : {}),
      // The context plays at the PCM rate: every chunk starts on an exact sample frame.
      sampleRate: this.context.sampleRate,
      listen: options.listen ?? {},
      ...(options.agent !== false ? { agent: options.agent ?? {} } : {}),
    });
    this.player = new AudioStreamPlayer(this.context, {
      ...(options.destination ? { destination: options.destination } : {}),
      ...(options.jitterMs !== undefined ? { jitterMs: options.jitterMs } : {}),
    });
    this.playback = new VoicePlayback(this.client, this.player);
    this.offs.push(
      this.playback.onSpeaking((speaking) => {
        this.reportWhilePlaying(speaking);
        this.emit('speaking', { speaking });
      }),
      this.playback.onFinished((event) => {
        // The final position of every stream, cut or not: what the user heard of it.
        this.client.reportPlayback(event.stream, event.playedMs);
        this.reported.delete(event.stream);
        this.emit('finished', event);
      }),
      this.client.on('ready', ({ listen }) => {
        if (listen && listen.format.sampleRate !== 16_000) this.mic?.setOutputRate(listen.format.sampleRate);
      }),
    );
  }

  on<K extends keyof VoiceAgentEvents>(type: K, listener: Listener<K>): () => void {
    if (!ownEvents.has(type)) return this.client.on(type as keyof VoiceClientEvents, listener as never);
    const set = this.listeners.get(type as OwnEvent) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(type as OwnEvent, set);
    return () => set.delete(listener as Listener<never>);
  }

  /** Connect and open the microphone (call it from a click: it may prompt, and resumes audio). Rejects when the microphone cannot be had. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('VoiceAgent is closed'));
    this.starting ??= this.open();
    return this.starting;
  }

  private async open(): Promise<void> {
    if (this.context.state !== 'running') void this.context.resume();
    this.client.connect();
    this.setMicrophone('opening');
    let mic: Microphone;
    try {
      mic = await Microphone.open(
        {
          context: this.context,
          outputRate: this.client.listenFormat?.sampleRate ?? 16_000,
          ...(this.options.microphone ? { constraints: this.options.microphone } : {}),
        },
        (frame) => this.onFrame(frame),
      );
    } catch (error) {
      this.setMicrophone('failed', error instanceof Error ? `${error.name}: ${error.message}` : String(error));
      throw error;
    }
    if (this.closed) {
      mic.close(); // closed while the browser was still asking
      return;
    }
    this.mic = mic;
    this.setMicrophone(this.hearing ? 'live' : 'muted');
  }

  setMode(mode: TalkMode): void {
    if (mode === this.mode) return;
    // Leaving push-to-talk while held ends that speech, as a release would.
    if (this.held) this.release();
    this.mode = mode;
    if (this.mic) this.setMicrophone(this.hearing ? 'live' : 'muted');
  }

  /** Push-to-talk: the microphone is heard from now on. */
  hold(): void {
    if (this.mode !== 'push-to-talk' || this.held || this.closed) return;
    this.held = true;
    if (this.mic) this.setMicrophone('live');
  }

  /** Push-to-talk: the microphone is muted again and the speech so far is one turn (input.commit). */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.client.commit();
    if (this.mic) this.setMicrophone('muted');
  }

  /** Silence the reply now, then STOP on the server. */
  stop(): void {
    this.playback.stop();
  }

  /** Release everything: microphone tracks, the worklet, the socket, the timer, an owned context. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.held = false;
    this.reportWhilePlaying(false);
    this.mic?.close();
    this.mic = null;
    this.client.close();
    this.player.stop();
    for (const off of this.offs.splice(0)) off();
    this.reported.clear();
    if (this.ownsContext && this.context.state !== 'closed') void this.context.close();
    this.setMicrophone('off');
  }

  private get hearing(): boolean {
    return this.mode === 'hands-free' || this.held;
  }

  private onFrame(frame: Int16Array): void {
    if (this.closed || !this.hearing) return;
    this.client.sendAudio(frame);
  }

  private reportWhilePlaying(on: boolean): void {
    if (on && !this.reportTimer && !this.closed) {
      this.reportTimer = setInterval(() => this.reportPosition(), this.options.playbackReportMs ?? 250);
    } else if (!on && this.reportTimer) {
      clearInterval(this.reportTimer);
      this.reportTimer = null;
    }
  }

  private reportPosition(): void {
    const stream = this.player.stream;
    if (stream === null || !this.player.playing) return;
    const playedMs = this.player.playedMs(stream);
    if (playedMs === null || playedMs <= (this.reported.get(stream) ?? 0)) return;
    this.reported.set(stream, playedMs);
    this.client.reportPlayback(stream, playedMs);
  }

  private setMicrophone(state: MicrophoneState, error?: string): void {
    if (state === this.microphone && error === undefined) return;
    this.microphone = state;
    this.emit('microphone', { state, ...(error !== undefined ? { error } : {}) });
  }

  private emit<K extends OwnEvent>(type: K, event: VoiceAgentEvents[K]): void {
    for (const l of this.listeners.get(type) ?? []) (l as Listener<K>)(event);
  }
}
