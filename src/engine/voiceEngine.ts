// The voice engine: turns each WebSocket connection into a session actor and wires the
// actor's actions to the socket. It owns the providers and the set of live sessions.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createActor, fromCallback, type ActorRefFrom, type InspectionEvent } from 'xstate';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine } from '../../machines/speaker.machine.js';
import { turnMachine, type TurnEnd } from '../../machines/turn.machine.js';
import { CloseCode, closeRequest, type CloseRequest } from '../../machines/errors.js';
import { sessionPhase, speakerOf } from '../../machines/sessionPhase.js';
import {
  defaultListenLimits,
  type EndRecord,
  type ListenFormat,
  type ListenLimits,
  type ListenRequest,
  type ListenVerdict,
  type ResumeOffer,
  type AgentSettings,
  type ServerMessage,
  type SessionLimits,
  type VoiceInfo,
  type WireError,
} from '../../machines/types.js';
import { createListenerHost, type MicInput } from '../listening/listenerHost.js';
import { Conversation, type ConversationLimits } from '../agent/conversation.js';
import { withDeadlines } from '../agent/deadlines.js';
import { echoChatModel } from '../agent/echoChatModel.js';
import { createReplyActor } from '../agent/replyActor.js';
import type { ChatModel } from '../agent/types.js';
import type { Clock } from '../listening/mediaClock.js';
import type { SpeechRecognizer, VoiceActivityDetector } from '../listening/types.js';
import { ProviderGuard, type CircuitStateName, type ProviderGuardOptions } from '../providers/providerGuard.js';
import type { TtsProvider } from '../providers/types.js';
import { createSynthesisLogic, type VoiceRoute } from './synthesisActor.js';
import { Admission, type AdmissionPolicy, type Lease } from './admission.js';
import type { SharedSessionCap } from '../cluster/keySessionCap.js';
import type { SessionDirectory } from '../cluster/sessionDirectory.js';
import type { SharedTextBudget } from '../cluster/textBudget.js';
import { PlayoutClock } from './playout.js';
import { sessionLimits, voiceIdsOf } from './sessionSettings.js';
import { planMove, type MovableSettings, type MovePlan, type SessionRecorder, type SessionStore } from './sessionMove.js';
import { MemoryOutboundLog, type OutboundFrame, type OutboundLog, type ResumeCursor, type ResumeFailure } from './outboundLog.js';

export interface VoiceEngineOptions {
  /** Upstream TTS providers; the first one's first voice is the default unless `defaultVoice` says otherwise. */
  providers: TtsProvider[];
  defaultVoice?: string;
  /** Sample rates sessions may ask for; the first is the default (24 000 Hz). */
  sampleRates?: number[];
  limits?: Partial<SessionLimits>;
  /** Audio frame duration on the wire, 20–100 ms. */
  chunkMs?: number;
  /** Pause the provider when the socket holds more than this many unsent bytes… */
  highWaterBytes?: number;
  /** …and resume once it is back under this. */
  lowWaterBytes?: number;
  /** Optional API keys; when set, session.start must carry one as `token`. */
  apiKeys?: string[];
  /** Circuit breaker of each provider (consecutive failures, open time). */
  circuitBreaker?: Omit<ProviderGuardOptions, 'onStateChange'>;
  /** Live inspection of every session (redacted); off unless given. */
  inspector?: SessionObserver;
  /** Per-connection and per-key limits against floods and runaway clients. */
  abuse?: Partial<AbuseLimits>;
  /** Concurrent connections (WebSockets and speech requests) per client IP (default 256). */
  maxConnectionsPerIp?: number;
  /** Browser origins allowed to open sessions on any transport; others get 403. Clients that send no Origin (servers, CLIs) are not affected. */
  allowedOrigins?: string[];
  /** Speech-to-text for sessions that ask to listen; without it every listen request gets listen_unavailable. */
  listen?: ListenOptions;
  /**
   * How far (ms of audio) a listening session's audio may run ahead of its client's playback
   * (default 1000): enough for network jitter, and barge-in then ends a reply the user is still
   * hearing. Sessions that do not listen are not paced.
   */
  playoutLeadMs?: number;
  /** The agent turn (sessions that ask with session.start `agent`); the embedded echo model by default. */
  agent?: AgentOptions;
  /** The per-key session cap kept across a cluster (Redis); without it the cap is counted in this process. */
  sharedSessionCap?: SharedSessionCap;
  /** The speech requests' per-key text budget kept across a cluster (Redis). */
  sharedTextBudget?: SharedTextBudget;
  /** Where a cluster's resumable sessions live, so a resume on another gateway can be relayed here. */
  sessionDirectory?: SessionDirectory;
  /** Resuming sessions after a dropped connection (wire contract v2); on by default, `false` turns it off. */
  resume?: Partial<ResumeOptions> | false;
  /**
   * Where a cluster records its resumable sessions, so that another gateway can take one over
   * when its gateway died (src/engine/sessionMove.ts). Needs synthesis on workers (the audio is
   * read again from the jobs' streams).
   */
  sessionStore?: SessionStore;
}

/** How long a dropped session waits for its client, and how much of what it sent it keeps. */
export interface ResumeOptions {
  /** The resume window: a detached session ends (as if its client were gone) after this long. */
  windowMs: number;
  /** Most bytes of sent frames kept per resumable session (the oldest go first; a resume that needs them fails). */
  maxLogBytes: number;
}

export const defaultResumeOptions: ResumeOptions = { windowMs: 30_000, maxLogBytes: 4 * 1024 * 1024 };

/** Resume outcomes for metrics: `succeeded`, `relayed` (to the owner), `moved` (taken over from a dead owner), or the failure's reason. */
export type ResumeOutcome = 'succeeded' | 'relayed' | 'moved' | ResumeFailure;

/** What the client sent in session.resume, validated. */
export interface ResumeRequest {
  sessionId: string;
  token: string;
  cursor: ResumeCursor;
}

/** What the engine answers user turns with (wire contract v2, "The agent turn"). */
export interface AgentOptions {
  /** The language model, already behind withDeadlines (default: the echo model, with deadlines). */
  model?: ChatModel;
  /** Bounds of each session's conversation. */
  conversation?: ConversationLimits;
}

/** When each message of one agent turn left (performance.now()), for the voice-to-voice split. */
export interface VoiceToVoiceTiming {
  turn: string;
  speechStoppedAt: number;
  finalAt?: number;
  firstTextAt?: number;
}

/** Agent counters (metrics and leak checks). */
export interface AgentStats {
  /** Model requests alive (one per reply being written). */
  replies: number;
  /** Turns ended, by status. */
  turnsEnded: Record<string, number>;
  /** Model failures, by code. */
  modelErrors: Record<string, number>;
}

/** What the engine needs to listen (wire contract v2). */
export interface ListenOptions {
  /**
   * Recognizers in order of preference. A session's recognizer is the first that hears its
   * language; with `phrases`, the first of those that restricts itself to them
   * (`restrictsToPhrases`), else the first general one; without phrases, the first general
   * one, else any. The engine closes them on shutdown.
   */
  recognizers: SpeechRecognizer[];
  /** One voice-activity detector per listening session (16 kHz mono). */
  createVad: () => VoiceActivityDetector;
  /** One mic gate per listening session, for the granted format. */
  createMicInput: (format: ListenFormat) => MicInput;
  /** Microphone formats the mic gate takes; the first is the default (pcm_s16le at 16 kHz). */
  formats?: ListenFormat[];
  limits?: Partial<ListenLimits>;
  /** Wall clock of the recognition deadline (tests pass a simulated one). */
  wallClock?: Clock;
  /** With a VAD that decides later (Silero): most audio a session may have waiting for decisions (default 3000 ms). */
  vadBacklogMs?: number;
}

/** Listening counters (metrics and leak checks). */
export interface ListeningStats {
  /** Listener hosts alive (one per listening session). */
  listeners: number;
  /** Recognition jobs not yet released. */
  recognitionJobs: number;
  turns: number;
  bargeIns: number;
  recognizerErrors: Record<string, number>;
  /** Seconds of microphone audio accepted. */
  audioSeconds: number;
  /** Milliseconds of audio waiting for an asynchronous VAD's decisions, over every session. */
  vadBacklogMs: number;
}

const defaultListenFormats: ListenFormat[] = [{ encoding: 'pcm_s16le', sampleRate: 16_000 }];

/** The primary subtag, lower case: 'en-US' hears with an 'en' recognizer. */
const primaryLanguage = (tag: string) => tag.toLowerCase().split('-')[0]!;

/** The session's recognizer (see ListenOptions.recognizers for the rule), or undefined when none hears the language. */
export function pickRecognizer(recognizers: readonly SpeechRecognizer[], language: string, phrases?: readonly string[]): SpeechRecognizer | undefined {
  const wanted = language.toLowerCase();
  const hears = (r: SpeechRecognizer) => r.languages.some((l) => l.toLowerCase() === wanted || primaryLanguage(l) === primaryLanguage(wanted));
  const candidates = recognizers.filter(hears);
  const restricted = candidates.find((r) => r.restrictsToPhrases === true);
  const general = candidates.find((r) => r.restrictsToPhrases !== true);
  return phrases && phrases.length > 0 ? (restricted ?? general) : (general ?? restricted);
}

/** The per-client limits of the admission policy (./admission.ts has their meaning and defaults). */
export type AbuseLimits = Pick<
  AdmissionPolicy,
  'messagesPerSecond' | 'messageBurst' | 'micFramesPerSecond' | 'micFrameBurst' | 'maxRejectedInARow' | 'textCharsPerMinute' | 'maxSessionsPerKey'
>;

/**
 * The port through which a session's inside can be watched (the inspector in
 * src/observability implements it); the engine knows no concrete observer.
 */
export interface SessionObserver {
  /** XState's `inspect` callback for one session actor. */
  observe(sessionId: string): (event: InspectionEvent) => void;
  /** XState's `inspect` callback for the session's listener actor (its own system), if the observer shows it. */
  observeListener?(sessionId: string): (event: InspectionEvent) => void;
  sessionEnded(sessionId: string): void;
}

export interface EngineStats {
  sessions: number;
  upstreamJobs: number;
  utterancesAccepted: number;
  utterancesEnded: number;
  endedByReason: Record<string, number>;
  /** Times a session paused its upstream because the client was not reading. */
  backpressurePauses: number;
  /**
   * Audio bytes held in the server ahead of the sockets: the look-ahead pieces' buffers plus
   * the providers' own queues (the embedded voice's per-job queues). Bounded per utterance
   * (docs/operations.md, "Memory per session").
   */
  heldAudioBytes: number;
  listening: ListeningStats;
  agent: AgentStats;
  /** session.start frames refused for a missing or wrong key. */
  authFailures: number;
  /** Client frames refused by the message or text rate limits. */
  rateLimited: number;
  /** Connections closed for flooding. */
  floodCutoffs: number;
  /** Upgrades refused before a session existed, by reason (origin, ip_cap). */
  refusedConnections: Record<string, number>;
  /** Sessions whose connection dropped, waiting (at most the resume window) for their client. */
  detachedSessions: number;
  /** Bytes held in the outbound logs of resumable sessions. */
  outboundLogBytes: number;
  /** session.resume frames by outcome. */
  resumes: Record<string, number>;
  /** Frames (audio and control) sent again to resumed clients. */
  framesReplayed: number;
}

export interface UtteranceEndedEvent extends EndRecord {
  sessionId: string;
  /** For an end caused by a client STOP: from the STOP frame's arrival to this end going out. */
  stopToEndMs?: number;
}

/**
 * What a session writes to. The WebSocket path and the HTTP speech endpoint each provide
 * one; the session machine and its rules are the same behind both.
 */
export interface SessionTransport {
  send(message: ServerMessage): void;
  sendAudio(stream: number, seq: number, pcm: Int16Array): void;
  /** Close the connection; `close.error` says why (a transport maps it, never the reason text). */
  close(close: CloseRequest): void;
  /** Bytes written but not yet taken by the peer (backpressure). */
  bufferedBytes(): number;
  isOpen(): boolean;
}

export type SessionActor = ActorRefFrom<typeof connectionMachine>;

/** A session's current connection: where its frames go, and what to do with it when the session ends. */
interface SessionLink {
  transport: SessionTransport;
  onEnd?: () => void;
}

/** What makes a session resumable: the digest of its token and everything it sent within the window. */
interface Resumable {
  tokenDigest: Buffer;
  log: OutboundLog;
}

interface SessionIO {
  /** Null while detached (a resumable session whose connection dropped). */
  link: SessionLink | null;
  resumable: Resumable | null;
  actor: SessionActor;
  /** Ends the session's bookkeeping once (the actor completed, or a handshake was absorbed by a resume). */
  finish: () => void;
  /** The client asked for `session.state` messages (session.start `observe: true`). */
  observe: boolean;
  /** The session's place under its key's cap, given back when the session ends. */
  keyLease?: Lease;
  /** The agent's conversation with this session's user (created with its first turn). */
  conversation?: Conversation;
  /** A listening session's playback as the server models it (paces its audio). */
  playout?: PlayoutClock;
  /** A cluster's record of this resumable session (another gateway can take it over from it). */
  recorder?: SessionRecorder;
  /** Taken over from another gateway: what the client already has of the replayed utterances is held back. */
  moving?: MoveFilter;
  /**
   * Voice-to-voice timing of the agent's latest turn: when the user's speech stopped (the
   * speech_stopped message went out), and the stream of its reply once accepted.
   */
  voiceToVoice?: VoiceToVoiceTiming & { stream: number | null };
}

export interface SessionHandle {
  sessionId: string;
  /** Send an event to the session actor (ignored once it has ended). */
  send(event: Parameters<SessionActor['send']>[0]): void;
  actor: SessionActor;
  /** Answer the client directly (errors outside the machine's rules, pong), if its transport is open. */
  reply(message: ServerMessage): void;
  /** Send the client `session.state` on every change of phase (session.start `observe: true`). */
  watchState(): void;
  /** Hold the session's place under its key's cap until it ends; false if it has ended already (the lease is released). */
  holdKeyLease(lease: Lease): boolean;
  /** Pace this session's audio to real time plus the playout lead (sessions that listen; after START). */
  pacePlayout(): void;
  /** A client STOP (of one utterance, or all), timed for the STOP → speak.end metric. */
  stop(id?: string): void;
  /**
   * Make the session resumable (the client asked): the offer its START carries to session.ready.
   * `settings` (what recreates it) lets a cluster record it, to move it if this gateway dies.
   */
  offerResume(settings?: Omit<MovableSettings, 'windowMs'>): ResumeOffer | null;
  /** The connection `transport` is gone: a resumable session detaches, any other ends (CLIENT_GONE). */
  connectionLost(transport: SessionTransport): void;
  /** Whether the session was granted listening (binary frames are then microphone audio). */
  listens(): boolean;
}

/** What a session taken over holds back: per replayed stream, the audio the client has, and whether it saw it accepted. */
interface MoveFilter {
  /** The replayed START's session.ready (the client gets the resumed one instead). */
  holdReady: boolean;
  afterSeq: Map<number, number>;
  unannounced: Set<number>;
}

const tokenDigest = (token: string) => createHash('sha256').update(token).digest();

const defaultRates = [24_000, 16_000, 22_050, 44_100, 48_000, 8_000];

export class VoiceEngine extends EventEmitter<{
  utteranceEnded: [UtteranceEndedEvent];
  utteranceAccepted: [{ sessionId: string; id: string; stream: number; voice: string; mode: string }];
  sessionStarted: [{ sessionId: string }];
  sessionEnded: [{ sessionId: string }];
  providerError: [{ provider: string; error: WireError }];
  providerCircuit: [{ provider: string; state: CircuitStateName }];
  /** An agent turn ended (one per user turn of a session with an agent). */
  turnEnded: [{ sessionId: string } & TurnEnd];
  /** A reply's model request started (the final transcript had words). */
  replyStarted: [{ sessionId: string; turn: string }];
  /** A reply's first text came from the model. */
  replyFirstText: [{ sessionId: string; turn: string }];
  /** From the end of the user's speech (speech_stopped) to the first audio of its reply. */
  voiceToVoice: [{ sessionId: string; turn: string; ms: number } & VoiceToVoiceTiming];
}> {
  readonly voices: VoiceInfo[];
  readonly defaultVoice: string;
  readonly sampleRates: number[];
  /** Derived once here and shared by every session (connection input). */
  private readonly voiceIds: ReadonlySet<string>;
  private readonly sessionLimits: SessionLimits;
  private readonly routes = new Map<string, VoiceRoute>();
  readonly guards = new Map<string, ProviderGuard>();
  private readonly sessions = new Map<string, SessionIO>();
  private readonly machine;
  private readonly options: Required<
    Omit<
      VoiceEngineOptions,
      'apiKeys' | 'defaultVoice' | 'limits' | 'circuitBreaker' | 'inspector' | 'abuse' | 'maxConnectionsPerIp' | 'allowedOrigins' | 'listen' | 'agent' | 'playoutLeadMs' | 'resume' | 'sharedSessionCap' | 'sessionDirectory' | 'sharedTextBudget' | 'sessionStore'
    >
  > &
    Pick<VoiceEngineOptions, 'limits' | 'inspector'>;
  /** Who may open a session and how much each may send, for every transport. */
  readonly admission: Admission;
  private draining = false;
  private liveJobs = 0;
  /** Bytes in the utterances' look-ahead buffers (the providers count their own). */
  private lookAheadBytes = 0;
  private counters = {
    accepted: 0,
    ended: 0,
    byReason: {} as Record<string, number>,
    backpressurePauses: 0,
  };
  /** When the STOP being processed for a session arrived (set only while it is processed). */
  private readonly stopArrivedAt = new Map<string, number>();
  private readonly listen: (ListenOptions & { formats: ListenFormat[] }) | null;
  private readonly listening: ListeningStats = { listeners: 0, recognitionJobs: 0, turns: 0, bargeIns: 0, recognizerErrors: {}, audioSeconds: 0, vadBacklogMs: 0 };
  private readonly agentStats: AgentStats = { replies: 0, turnsEnded: {}, modelErrors: {} };
  /** The agent's model (the configured one, or the embedded echo model). */
  readonly chatModel: ChatModel;
  private readonly playoutLeadMs: number;
  private readonly resumeOptions: ResumeOptions | null;
  /** A cluster's directory of resumable sessions (null in one process). */
  readonly directory: SessionDirectory | null;
  private readonly conversationLimits: ConversationLimits | undefined;
  /** A cluster's records of resumable sessions, to take one over from a dead gateway (null in one process). */
  private readonly sessionStore: SessionStore | null;
  private readonly resumeCounters = { byOutcome: {} as Record<string, number>, framesReplayed: 0 };

  constructor(options: VoiceEngineOptions) {
    super();
    if (options.providers.length === 0) throw new Error('voxline needs at least one TTS provider');
    this.options = {
      providers: options.providers,
      sampleRates: options.sampleRates ?? defaultRates,
      chunkMs: options.chunkMs ?? 40,
      highWaterBytes: options.highWaterBytes ?? 256 * 1024,
      lowWaterBytes: options.lowWaterBytes ?? 64 * 1024,
      limits: options.limits,
      inspector: options.inspector,
    };
    if (this.options.chunkMs < 20 || this.options.chunkMs > 100) throw new RangeError('chunkMs must be within 20..100');
    this.admission = new Admission({
      ...options.abuse,
      ...(options.apiKeys ? { apiKeys: options.apiKeys } : {}),
      ...(options.maxConnectionsPerIp !== undefined ? { maxConnectionsPerIp: options.maxConnectionsPerIp } : {}),
      ...(options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {}),
    }, { ...(options.sharedSessionCap ? { sessionCap: options.sharedSessionCap } : {}), ...(options.sharedTextBudget ? { textBudget: options.sharedTextBudget } : {}) });
    // `provider:voice` always names one provider's voice; a bare voice id goes to the
    // first provider (in configuration order) that offers it.
    const voices: VoiceInfo[] = [];
    for (const provider of options.providers) {
      if (this.guards.has(provider.name)) throw new Error(`two providers are named "${provider.name}"`);
      const guard = new ProviderGuard(provider.name, {
        ...options.circuitBreaker,
        onStateChange: (state) => this.emit('providerCircuit', { provider: provider.name, state }),
      });
      this.guards.set(provider.name, guard);
      for (const voice of provider.voices) {
        const route = { provider, providerVoice: voice.id, guard };
        this.routes.set(`${provider.name}:${voice.id}`, route);
        if (!this.routes.has(voice.id)) this.routes.set(voice.id, route);
        voices.push(voice);
      }
    }
    this.voices = voices;
    this.defaultVoice = options.defaultVoice ?? this.voices[0]!.id;
    if (!this.routes.has(this.defaultVoice)) throw new Error(`default voice "${this.defaultVoice}" is not offered by any provider`);
    this.sampleRates = this.options.sampleRates;
    this.voiceIds = voiceIdsOf(this.voices);
    this.sessionLimits = sessionLimits(options.limits);

    const synthesis = createSynthesisLogic({
      resolveVoice: (id) => this.routes.get(id),
      chunkMs: this.options.chunkMs,
      writeAudio: (sessionId, stream, seq, pcm) => this.sendAudio(sessionId, stream, seq, pcm),
      onProviderError: (provider, error) => this.emit('providerError', { provider, error }),
      // Count live upstream jobs so tests and metrics can see that nothing is left behind.
      onJobStart: () => this.liveJobs++,
      onJobGone: () => this.liveJobs--,
      onHeldAudio: (delta) => (this.lookAheadBytes += delta),
      // Recorded sessions name their synthesis jobs, so a gateway taking them over reads the same audio.
      jobOf: (sessionId, stream, piece) => {
        const recorder = this.sessions.get(sessionId)?.recorder;
        return recorder ? { key: `${sessionId}:${stream}:${piece}`, fence: recorder.fence } : undefined;
      },
    });
    // The speaker writes messages and audio straight to the transport; the connection owns the close.
    const speaker = speakerMachine.provide({
      actions: {
        sendMessage: ({ context }, message) => this.sendJson(context.sessionId, message),
        sendAudio: ({ context }, audio) => this.sendAudio(context.sessionId, audio.stream, audio.seq, audio.pcm),
        utteranceEnded: ({ context }, record) => {
          // Cut short: the client drops what it had scheduled, so nothing of it is ahead any more.
          if (record.reason === 'interrupted' || record.reason === 'stopped') this.sessions.get(context.sessionId)?.playout?.reset();
          this.counters.ended++;
          this.counters.byReason[record.reason] = (this.counters.byReason[record.reason] ?? 0) + 1;
          const stopAt = record.reason === 'stopped' ? this.stopArrivedAt.get(context.sessionId) : undefined;
          this.emit('utteranceEnded', {
            sessionId: context.sessionId,
            ...record,
            ...(stopAt !== undefined ? { stopToEndMs: performance.now() - stopAt } : {}),
          });
        },
        utteranceAccepted: ({ context }, info) => {
          this.counters.accepted++;
          const { id, stream, voice, mode } = info;
          const io = this.sessions.get(context.sessionId);
          // A replayed utterance (taken over) is in the record already.
          if (io?.recorder && !io.moving?.afterSeq.has(stream)) io.recorder.accepted(info);
          this.emit('utteranceAccepted', { sessionId: context.sessionId, id, stream, voice, mode });
        },
        utteranceAppended: ({ context }, { stream, text, final }) => this.sessions.get(context.sessionId)?.recorder?.appended(stream, text, final),
      },
      actors: {
        upstream: synthesis,
        drainWatcher: fromCallback(({ input, sendBack }) => {
          const io = this.sessions.get((input as { sessionId: string }).sessionId);
          const timer = setInterval(() => {
            // Detached: nobody to wait for (the outbound log has its own bound).
            if (!io?.link || (io.link.transport.bufferedBytes() <= this.options.lowWaterBytes && (io.playout?.drained ?? true))) sendBack({ type: 'CLIENT_DRAINED' });
          }, 10);
          return () => clearInterval(timer);
        }),
      },
    });
    this.listen = options.listen ? { ...options.listen, formats: options.listen.formats ?? defaultListenFormats } : null;
    this.resumeOptions = options.resume === false ? null : { ...defaultResumeOptions, ...options.resume };
    this.directory = options.sessionDirectory ?? null;
    this.sessionStore = options.sessionStore ?? null;
    // Warm the recognizers now (a PocketSphinx process takes 0.5-2 s), not on the first turn. Here,
    // not in createListening: the engine owns them from now on (shutdown closes them), so whoever
    // starts their processes also stops them. A failure is the first job's to report.
    for (const recognizer of this.listen?.recognizers ?? []) recognizer.ready().catch(() => {});
    const listening = this.listening;
    const listener = this.listen
      ? createListenerHost({
          recognizers: new Map(this.listen.recognizers.map((r) => [r.name, r])),
          createVad: this.listen.createVad,
          createMicInput: this.listen.createMicInput,
          limits: { ...defaultListenLimits, ...this.listen.limits },
          sendMessage: (sessionId, message) => this.sendJson(sessionId, message),
          ...(this.listen.wallClock ? { wallClock: this.listen.wallClock } : {}),
          ...(this.listen.vadBacklogMs !== undefined ? { vadBacklogMs: this.listen.vadBacklogMs } : {}),
          ...(options.inspector?.observeListener ? { inspect: (sessionId: string) => options.inspector!.observeListener!(sessionId) } : {}),
          hooks: {
            listenerStarted: () => listening.listeners++,
            listenerStopped: () => listening.listeners--,
            jobStarted: () => listening.recognitionJobs++,
            jobEnded: () => listening.recognitionJobs--,
            turnStarted: () => listening.turns++,
            bargeIn: () => listening.bargeIns++,
            recognizerError: (code) => (listening.recognizerErrors[code] = (listening.recognizerErrors[code] ?? 0) + 1),
            audio: (ms) => (listening.audioSeconds += ms / 1000),
            vadBacklog: (deltaMs) => (listening.vadBacklogMs += deltaMs),
          },
        })
      : undefined;
    this.chatModel = options.agent?.model ?? withDeadlines(echoChatModel());
    this.playoutLeadMs = options.playoutLeadMs ?? 1_000;
    const conversationLimits = options.agent?.conversation;
    this.conversationLimits = conversationLimits;
    const agentStats = this.agentStats;
    const conversationOf = (sessionId: string) => {
      const io = this.sessions.get(sessionId);
      if (io) io.conversation ??= new Conversation(conversationLimits);
      return io?.conversation;
    };
    const turn = turnMachine.provide({
      actions: {
        sendMessage: ({ context }, message) => this.sendJson(context.sessionId, message),
        remember: ({ context }, memory) => {
          const conversation = conversationOf(context.sessionId);
          if (memory.kind === 'user') conversation?.userSaid(memory.turn, memory.text);
          else conversation?.assistantHeard(memory.turn, memory.heard, memory.interrupted);
          const recorder = this.sessions.get(context.sessionId)?.recorder;
          if (recorder && conversation) recorder.remembered(conversation.saved());
        },
        turnEnded: ({ context }, end) => {
          agentStats.turnsEnded[end.status] = (agentStats.turnsEnded[end.status] ?? 0) + 1;
          this.emit('turnEnded', { sessionId: context.sessionId, ...end });
        },
      },
      actors: {
        reply: createReplyActor({
          model: this.chatModel,
          conversation: conversationOf,
          onStart: (sessionId, turnId) => {
            agentStats.replies++;
            this.emit('replyStarted', { sessionId, turn: turnId });
          },
          onEnd: () => agentStats.replies--,
          onFirstText: (sessionId, turnId) => this.emit('replyFirstText', { sessionId, turn: turnId }),
          onError: (error) => (agentStats.modelErrors[error.code] = (agentStats.modelErrors[error.code] ?? 0) + 1),
        }),
      },
    });
    this.machine = connectionMachine.provide({
      actions: {
        sendMessage: ({ context }, message) => this.sendJson(context.sessionId, message),
        closeConnection: ({ context }, close) => {
          const transport = this.sessions.get(context.sessionId)?.link?.transport;
          if (transport?.isOpen()) transport.close(close);
        },
      },
      actors: listener ? { speaker, listener, turn } : { speaker, turn },
    });
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Ready to take sessions: every provider warm and not shutting down. */
  isReady(): boolean {
    return !this.draining && this.options.providers.every((p) => p.isReady());
  }

  /** The providers behind this engine (for metrics). */
  get providers(): readonly TtsProvider[] {
    return this.options.providers;
  }

  async ready(): Promise<void> {
    await Promise.all(this.options.providers.map((p) => p.ready()));
  }

  /** A voice id (or `provider:id`) a session may name. */
  offersVoice(id: string): boolean {
    return this.voiceIds.has(id);
  }

  /** The listener's limits in force (defaults with the engine's overrides). */
  listenLimits(): ListenLimits {
    return { ...defaultListenLimits, ...this.listen?.limits };
  }

  stats(): EngineStats {
    return {
      sessions: this.sessions.size,
      upstreamJobs: this.liveJobs,
      utterancesAccepted: this.counters.accepted,
      utterancesEnded: this.counters.ended,
      endedByReason: { ...this.counters.byReason },
      backpressurePauses: this.counters.backpressurePauses,
      heldAudioBytes: this.lookAheadBytes + this.options.providers.reduce((sum, p) => sum + (p.poolStats?.().bufferedBytes ?? 0), 0),
      listening: { ...this.listening, recognizerErrors: { ...this.listening.recognizerErrors } },
      agent: { replies: this.agentStats.replies, turnsEnded: { ...this.agentStats.turnsEnded }, modelErrors: { ...this.agentStats.modelErrors } },
      authFailures: this.admission.counters.authFailures,
      rateLimited: this.admission.counters.rateLimited,
      floodCutoffs: this.admission.counters.floodCutoffs,
      refusedConnections: { ...this.admission.counters.refused },
      detachedSessions: [...this.sessions.values()].filter((io) => io.link === null).length,
      outboundLogBytes: [...this.sessions.values()].reduce((sum, io) => sum + (io.resumable?.log.bytes ?? 0), 0),
      resumes: { ...this.resumeCounters.byOutcome },
      framesReplayed: this.resumeCounters.framesReplayed,
    };
  }

  /**
   * Run one session actor over `transport` until it ends; `onEnd` runs once when it has.
   * The caller feeds it events (START, SPEAK, STOP, CLIENT_GONE).
   */
  startSession(transport: SessionTransport, onEnd?: () => void): SessionHandle {
    const sessionId = randomUUID();
    return this.handleOf(sessionId, this.createSession(sessionId, transport, onEnd));
  }

  private createSession(sessionId: string, transport: SessionTransport, onEnd?: () => void): SessionIO {
    const actor = createActor(this.machine, {
      input: {
        sessionId,
        voices: this.voices,
        voiceIds: this.voiceIds,
        defaultVoice: this.defaultVoice,
        sampleRates: this.sampleRates,
        limits: this.sessionLimits,
      },
      ...(this.options.inspector ? { inspect: this.options.inspector.observe(sessionId) } : {}),
    });
    const io: SessionIO = {
      link: { transport, ...(onEnd ? { onEnd } : {}) },
      resumable: null,
      actor,
      observe: false,
      finish: () => {
        if (!this.sessions.delete(sessionId)) return;
        io.keyLease?.release();
        if (io.resumable) {
          io.resumable.log.release();
          this.directory?.remove(sessionId);
        }
        io.recorder?.release();
        this.options.inspector?.sessionEnded(sessionId);
        io.link?.onEnd?.();
        this.emit('sessionEnded', { sessionId });
      },
    };
    this.sessions.set(sessionId, io);
    // Only the end is watched here; the phases only for a client that asked (watchState).
    actor.subscribe({
      complete: io.finish,
      error: () => {
        // Should never happen (every invoke has onError); if it does, drop only this session.
        io.link?.transport.close(closeRequest('internal'));
        io.finish();
      },
    });
    this.emit('sessionStarted', { sessionId });
    actor.start();
    return io;
  }

  /** The handle through which a connection drives session `sessionId` (a new one, or one it resumed). */
  private handleOf(sessionId: string, io: SessionIO): SessionHandle {
    const { actor } = io;
    const send = (event: Parameters<SessionActor['send']>[0]) => {
      if (actor.getSnapshot().status === 'active') actor.send(event);
    };
    return {
      sessionId,
      send,
      actor,
      reply: (message) => this.sendJson(sessionId, message),
      watchState: () => {
        if (io.observe) return;
        io.observe = true;
        this.watchPhases(io);
      },
      holdKeyLease: (lease) => this.holdKeyLease(sessionId, lease),
      pacePlayout: () => {
        // After START: the connection's context holds the negotiated output rate, read once here.
        const { sampleRate } = io.actor.getSnapshot().context as { sampleRate: number };
        io.playout ??= new PlayoutClock(this.playoutLeadMs, sampleRate);
      },
      stop: (id) => {
        // The machine announces the ends inside this send; note when the STOP arrived for metrics.
        this.stopArrivedAt.set(sessionId, performance.now());
        try {
          send(id !== undefined ? { type: 'STOP', id } : { type: 'STOP' });
        } finally {
          this.stopArrivedAt.delete(sessionId);
        }
      },
      offerResume: (settings) => {
        const options = this.resumeOptions;
        if (!options || !this.sessions.has(sessionId)) return null;
        const token = randomBytes(32).toString('base64url');
        io.resumable?.log.release();
        io.resumable = { tokenDigest: tokenDigest(token), log: new MemoryOutboundLog({ windowMs: options.windowMs, maxBytes: options.maxLogBytes }) };
        this.directory?.add(sessionId);
        if (this.sessionStore && settings) {
          io.recorder?.release();
          io.recorder = this.sessionStore.create(sessionId, io.resumable.tokenDigest, { ...settings, windowMs: options.windowMs }, () => this.movedAway(io));
        }
        return { token, windowMs: options.windowMs };
      },
      connectionLost: (transport) => this.connectionLost(io, transport),
      listens: () => actor.getSnapshot().context.listen?.granted === true,
    };
  }

  /**
   * session.resume as the first frame of the connection `handshake` (a session still in its
   * handshake): if the session exists, the token matches and its log still holds what the
   * client missed, the handshake session is absorbed (it ends without closing its connection),
   * the connection becomes the resumed session's, which answers session.ready (`resumed`),
   * replays what was missed in order and goes on live. Everything here is synchronous, so no
   * live frame can slip between the replay and the attach.
   */
  resumeSession(handshake: SessionHandle, request: ResumeRequest, onEnd?: () => void): { ok: true; session: SessionHandle } | { ok: false; reason: ResumeFailure; message: string } {
    const refuse = (reason: ResumeFailure, message: string) => {
      this.countResume(reason);
      return { ok: false as const, reason, message };
    };
    const shell = this.sessions.get(handshake.sessionId);
    const transport = shell?.link?.transport;
    // Taken while draining too: a draining gateway's own clients come back to it, relayed by another.
    if (!shell || !transport) return refuse('unavailable', 'this connection cannot take a session');
    const io = this.sessions.get(request.sessionId);
    const snapshot = io?.actor.getSnapshot();
    if (!io?.resumable || io === shell || snapshot?.status !== 'active') return refuse('unknown_session', 'no such session (unknown, ended or its window ran out)');
    // Constant time over the digests: the comparison says nothing about how much of the token matched.
    if (!timingSafeEqual(io.resumable.tokenDigest, tokenDigest(request.token))) return refuse('wrong_token', 'the resume token does not match');
    const { log } = io.resumable;
    const previous = io.link;
    if (previous) {
      // The client is back before this server saw its old connection drop: that one is done.
      io.link = null;
      log.markDropped();
      io.actor.send({ type: 'DETACH' });
      previous.onEnd?.();
    }
    const verdict = log.replay(request.cursor);
    if (!verdict.ok) {
      // The rightful client (it had the token) cannot go on: end the session now, not at the window's end.
      if (verdict.reason === 'frames_gone') io.actor.send({ type: 'CLIENT_GONE' });
      return refuse(verdict.reason, verdict.message);
    }
    this.absorb(shell);
    io.link = { transport, ...(onEnd ? { onEnd } : {}) };
    this.sendResumedReady(io, request.token, snapshot.context.resume?.windowMs ?? 0);
    for (const frame of verdict.frames) this.replayFrame(io, frame);
    this.resumeCounters.framesReplayed += verdict.frames.length;
    log.markAttached();
    io.actor.send({ type: 'ATTACH' });
    this.countResume('succeeded');
    return { ok: true, session: this.handleOf(request.sessionId, io) };
  }

  /** `transport` is gone: a resumable session (past its handshake) detaches, any other ends. */
  private connectionLost(io: SessionIO, transport: SessionTransport): void {
    // A connection that was replaced by a resume says nothing about the session any more.
    if (io.link?.transport !== transport) return;
    const snapshot = io.actor.getSnapshot();
    if (snapshot.status !== 'active') return;
    if (io.resumable && !snapshot.matches('handshake')) {
      io.link = null;
      io.resumable.log.markDropped();
      io.actor.send({ type: 'DETACH' });
    } else {
      io.actor.send({ type: 'CLIENT_GONE' });
    }
  }

  /** Whether sessions of a dead gateway can be taken over here (a cluster with a session store). */
  get movesSessions(): boolean {
    return this.sessionStore !== null && this.resumeOptions !== null;
  }

  /**
   * session.resume of a session no live gateway holds (its owner died): take it over from the
   * cluster's record (src/engine/sessionMove.ts). The record is fenced to this gateway first,
   * then the session is made again under its own id, from its settings, on the connection of
   * `handshake`: session.ready (`resumed`), the ends the client missed, and its open utterances
   * spoken again through this gateway's statechart from the same synthesis jobs, with what the
   * client already has held back.
   */
  async moveSession(handshake: SessionHandle, request: ResumeRequest, onEnd?: () => void): Promise<{ ok: true; session: SessionHandle } | { ok: false; reason: ResumeFailure; message: string }> {
    const refuse = (reason: ResumeFailure, message: string) => {
      this.countResume(reason);
      return { ok: false as const, reason, message };
    };
    const store = this.sessionStore;
    const options = this.resumeOptions;
    if (!store || !options || this.draining) return refuse('unavailable', 'this gateway cannot take sessions over now');
    if (this.sessions.has(request.sessionId)) return refuse('unavailable', 'the session is already here');
    let io: SessionIO | undefined;
    let fencedEarly = false;
    const adoption = await store.adopt(request.sessionId, tokenDigest(request.token), () => (io ? this.movedAway(io) : (fencedEarly = true)));
    if (!adoption.ok) return refuse(adoption.reason, adoption.message);
    const { settings, utterances } = adoption.session;
    const planned = planMove(utterances, request.cursor);
    // The rightful client (it had the token) cannot go on: the session ends now.
    if (!planned.ok) {
      adoption.recorder.release();
      return refuse(planned.reason, planned.message);
    }
    const admitted = await this.admission.admitMovedSession(settings.keyId);
    const shell = this.sessions.get(handshake.sessionId);
    const transport = shell?.link?.transport;
    if (!admitted.ok || fencedEarly || !shell || !transport?.isOpen() || !shell.actor.getSnapshot().matches('handshake') || this.sessions.has(request.sessionId)) {
      if (admitted.ok) admitted.value.release();
      // Not taken after all: another gateway may (the record stays, until its window ends).
      adoption.recorder.abandon();
      return refuse('unavailable', admitted.ok ? 'the connection went away while the session moved' : admitted.refusal.message);
    }
    this.absorb(shell);
    io = this.createSession(request.sessionId, transport, onEnd);
    io.keyLease = admitted.value;
    io.recorder = adoption.recorder;
    io.resumable = { tokenDigest: tokenDigest(request.token), log: new MemoryOutboundLog({ windowMs: options.windowMs, maxBytes: options.maxLogBytes }) };
    // The client knows these streams from the old gateway: a later resume here may name them.
    io.resumable.log.inherit(Math.max(request.cursor.lastStream, ...utterances.map((u) => u.stream)));
    this.directory?.add(request.sessionId);
    if (adoption.session.conversation !== undefined) {
      io.conversation = new Conversation(this.conversationLimits);
      io.conversation.restore(adoption.session.conversation);
    }
    this.replayMove(io, request, settings, planned.plan);
    this.countResume('moved');
    return { ok: true, session: this.handleOf(request.sessionId, io) };
  }

  /** Recreate a moved session from its settings and bring its client up to date (see moveSession). */
  private replayMove(io: SessionIO, request: ResumeRequest, settings: MovableSettings, plan: MovePlan): void {
    const moving: MoveFilter = { holdReady: true, afterSeq: new Map(), unannounced: new Set() };
    for (const { announce, afterSeq, utterance } of plan.replays) {
      moving.afterSeq.set(utterance.stream, afterSeq);
      if (!announce) moving.unannounced.add(utterance.stream);
    }
    io.moving = moving;
    const handle = this.handleOf(request.sessionId, io);
    if (settings.observe) handle.watchState();
    const listen = settings.listen ? this.listenVerdict(settings.listen) : undefined;
    io.actor.send({
      type: 'START',
      sampleRate: settings.sampleRate,
      ...(settings.voice !== undefined ? { voice: settings.voice } : {}),
      ...(listen ? { listen } : {}),
      ...(settings.agent ? { agent: settings.agent } : {}),
      resume: { token: request.token, windowMs: settings.windowMs },
    });
    moving.holdReady = false;
    if (listen?.granted) handle.pacePlayout();
    this.sendResumedReady(io, request.token, settings.windowMs);
    for (const { announce, utterance } of plan.ends) {
      if (announce) this.sendJson(request.sessionId, { type: 'speak.accepted', id: utterance.id, stream: utterance.stream });
      // Straight to the client and the log: the record has this end already.
      const { recorder } = io;
      io.recorder = undefined;
      this.sendJson(request.sessionId, utterance.end!.message);
      io.recorder = recorder;
    }
    for (const { utterance } of plan.replays) {
      const { id, text, voice, final, stream } = utterance;
      handle.send({ type: 'SPEAK', request: { id, text, ...(voice !== undefined ? { voice } : {}), final, mode: 'enqueue', stream } });
    }
  }

  /** session.ready of a resumed session (here, or taken over): its format, voices and listening, the same offer, `resumed`. */
  private sendResumedReady(io: SessionIO, token: string, windowMs: number): void {
    const { context } = io.actor.getSnapshot();
    this.sendJson(context.sessionId, {
      type: 'session.ready',
      sessionId: context.sessionId,
      protocol: 2,
      format: { encoding: 'pcm_s16le', sampleRate: context.sampleRate, channels: 1 },
      voices: context.voices,
      ...(context.listen?.granted ? { listen: { format: context.listen.format } } : {}),
      resume: { token, windowMs },
      resumed: true,
    });
  }

  /** What a session taken over holds back of what its replay sends (see replayMove). */
  private heldBack(moving: MoveFilter, message: ServerMessage): boolean {
    if (message.type === 'session.ready') return moving.holdReady;
    return message.type === 'speak.accepted' && moving.unannounced.delete(message.stream);
  }

  /**
   * Another gateway took this session over (the record's fence moved on): this one lets go of it
   * without a word to the client (it is on the other gateway) and without cancelling its
   * synthesis jobs (their cancels are fenced too).
   */
  private movedAway(io: SessionIO): void {
    io.recorder = undefined;
    const link = io.link;
    io.link = null;
    if (link?.transport.isOpen()) link.transport.close({ code: CloseCode.serviceRestart, reason: 'session moved to another gateway', error: 'shutting_down' });
    link?.onEnd?.();
    if (io.actor.getSnapshot().status === 'active') io.actor.send({ type: 'CLIENT_GONE' });
  }

  /** Whether this process holds resumable session `sessionId` (else a cluster may relay the resume). */
  holdsSession(sessionId: string): boolean {
    return this.sessions.get(sessionId)?.resumable != null;
  }

  /**
   * Whether this process's copy of `sessionId` is recorded in the cluster, so that another
   * gateway may have taken it over meanwhile (a resume then asks the directory first).
   */
  recordsSession(sessionId: string): boolean {
    return this.sessions.get(sessionId)?.recorder !== undefined;
  }

  /** The directory names another gateway as `sessionId`'s owner: this copy is stale and lets go. */
  letGoOf(sessionId: string): void {
    const io = this.sessions.get(sessionId);
    if (io?.recorder) {
      io.recorder.abandon();
      this.movedAway(io);
    }
  }

  /**
   * A connection's handshake session gives way to another use of its connection (a resume here,
   * or a relay to the gateway that owns the session): it ends without closing the connection.
   */
  abandonHandshake(handshake: SessionHandle, outcome?: ResumeOutcome): void {
    const shell = this.sessions.get(handshake.sessionId);
    if (shell?.actor.getSnapshot().matches('handshake')) this.absorb(shell);
    if (outcome) this.countResume(outcome);
  }

  private absorb(shell: SessionIO): void {
    shell.link = null;
    shell.actor.stop();
    shell.finish();
  }

  private countResume(outcome: ResumeOutcome): void {
    this.resumeCounters.byOutcome[outcome] = (this.resumeCounters.byOutcome[outcome] ?? 0) + 1;
  }

  /** A frame from the log, to the resumed connection only (it is in the log already). */
  private replayFrame(io: SessionIO, frame: OutboundFrame): void {
    const transport = io.link?.transport;
    if (!transport?.isOpen()) return;
    try {
      if (frame.kind === 'audio') transport.sendAudio(frame.stream, frame.seq, frame.pcm);
      else transport.send(frame.message);
    } catch {
      this.transportFailed(io, transport);
    }
  }

  /**
   * Send `session.state` on every change of phase. The phase comes from the connection or its
   * speaker: both are watched. Made only for sessions whose client asked (session.start `observe`).
   */
  private watchPhases(io: SessionIO): void {
    const { actor } = io;
    let lastPath = '';
    let watchedSpeaker: unknown = null;
    const reportPhase = () => {
      const phase = sessionPhase(actor.getSnapshot());
      if (!phase || phase.path === lastPath) return;
      lastPath = phase.path;
      // To whichever connection the session has now (a phase is news, not history: never logged).
      const transport = io.link?.transport;
      if (transport?.isOpen()) transport.send({ type: 'session.state', ...phase });
    };
    actor.subscribe({
      next: (snapshot) => {
        const speaker = speakerOf(snapshot);
        if (speaker && speaker !== watchedSpeaker) {
          watchedSpeaker = speaker;
          // A done speaker's phase is the connection's to report (after its close).
          speaker.subscribe({ next: (s) => s.status === 'active' && reportPhase(), error: () => {} });
        }
        reportPhase();
      },
      error: () => {},
    });
  }

  /**
   * The verdict on a session's listen request, for its START: granted with the format the mic
   * gate takes (the one asked for when offered, else the default) and the recognizer that hears
   * its language, or refused (no listen option, or no recognizer for the language).
   */
  listenVerdict(request: ListenRequest): ListenVerdict {
    const listen = this.listen;
    if (!listen) return { granted: false };
    const recognizer = pickRecognizer(listen.recognizers, request.language, request.phrases);
    if (!recognizer) return { granted: false };
    const asked = request.format;
    const format =
      (asked && listen.formats.find((f) => f.encoding === asked.encoding && f.sampleRate === asked.sampleRate)) ??
      (asked && listen.formats.find((f) => f.encoding === asked.encoding)) ??
      listen.formats[0]!;
    return {
      granted: true,
      format,
      language: request.language,
      ...(request.phrases ? { phrases: request.phrases } : {}),
      interruptions: request.interruptions,
      recognizer: recognizer.name,
    };
  }

  /** Whether `voice` (an id or `provider:id`) is offered. */
  hasVoice(voice: string): boolean {
    return this.routes.has(voice);
  }

  /** Most characters one utterance may hold. */
  get maxTextChars(): number {
    return this.sessionLimits.maxTextChars;
  }

  /** Place `sessionId` under its key's cap; the lease is given back when the session ends. */
  private holdKeyLease(sessionId: string, lease: Lease): boolean {
    const io = this.sessions.get(sessionId);
    if (!io) {
      lease.release();
      return false;
    }
    io.keyLease?.release();
    io.keyLease = lease;
    return true;
  }

  private sendJson(sessionId: string, message: ServerMessage): void {
    const io = this.sessions.get(sessionId);
    if (!io) return;
    if (io.moving && this.heldBack(io.moving, message)) return;
    if (io.recorder && message.type === 'speak.end') {
      io.recorder.ended(message.stream, message);
    }
    // session.ready and pong answer the connection itself (and session.ready carries the token): never replayed.
    if (io.resumable && message.type !== 'session.ready' && message.type !== 'pong') io.resumable.log.append({ kind: 'message', message });
    const transport = io.link?.transport;
    if (!transport?.isOpen()) return;
    // The start of a voice-to-voice measurement (its end is the reply's first audio, in sendAudio).
    if (message.type === 'input.speech_stopped' && io.playout !== undefined) {
      io.voiceToVoice = { turn: message.turn, speechStoppedAt: performance.now(), stream: null };
    } else if (io.voiceToVoice && 'turn' in message && message.turn === io.voiceToVoice.turn) {
      if (message.type === 'transcript' && message.final) io.voiceToVoice.finalAt = performance.now();
      else if (message.type === 'reply.text') io.voiceToVoice.firstTextAt ??= performance.now();
    } else if (message.type === 'speak.accepted' && io.voiceToVoice && message.id === `reply:${io.voiceToVoice.turn}`) {
      io.voiceToVoice.stream = message.stream;
    }
    try {
      transport.send(message);
    } catch {
      this.transportFailed(io, transport);
    }
  }

  /** A transport that throws is treated as a peer that went away: a resumable session detaches, any other ends. */
  private transportFailed(io: SessionIO, transport: SessionTransport): void {
    queueMicrotask(() => this.connectionLost(io, transport));
    try {
      transport.close(closeRequest('internal'));
    } catch {
      /* already broken */
    }
  }

  private sendAudio(sessionId: string, stream: number, seq: number, pcm: Int16Array): void {
    const io = this.sessions.get(sessionId);
    if (!io) return;
    io.recorder?.sent(stream, seq);
    // What the client already has of an utterance taken over from another gateway.
    if (io.moving && seq <= (io.moving.afterSeq.get(stream) ?? -1)) return;
    io.resumable?.log.append({ kind: 'audio', stream, seq, pcm });
    const transport = io.link?.transport;
    if (!transport?.isOpen()) return;
    try {
      transport.sendAudio(stream, seq, pcm);
    } catch {
      this.transportFailed(io, transport);
      return;
    }
    io.playout?.addSamples(pcm.length);
    const v2v = io.voiceToVoice;
    if (v2v && v2v.stream === stream) {
      io.voiceToVoice = undefined;
      const { stream: _, ...timing } = v2v;
      this.emit('voiceToVoice', { sessionId, ...timing, ms: performance.now() - v2v.speechStoppedAt });
    }
    if (transport.bufferedBytes() > this.options.highWaterBytes || io.playout?.full) {
      // Delivered after the current step; the machine pauses the upstream.
      queueMicrotask(() => {
        const snapshot = io.actor.getSnapshot();
        if (snapshot.status !== 'active') return;
        const speaker = speakerOf(snapshot)?.getSnapshot();
        if (!(speaker?.status === 'active' && speaker.matches({ active: { live: { streaming: 'paused' } } }))) this.counters.backpressurePauses++;
        io.actor.send({ type: 'CLIENT_BACKPRESSURE' });
      });
    }
  }

  /**
   * Graceful shutdown: refuse new sessions, end every live utterance once (failed,
   * shutting_down), close sockets with 1001, then release the providers.
   *
   * Resumable sessions drain first (`drainMs` > 0): their clients get `session.goaway` and a
   * 1012 close, so they resume on another gateway (which relays them back here); the sessions go
   * on, detached or relayed, until nothing plays or waits in any of them, or `drainMs` passed.
   * Only then do they end like the others.
   */
  async shutdown(timeoutMs = 5_000, drainMs = 0): Promise<void> {
    this.draining = true;
    const goaway: CloseRequest = { code: CloseCode.serviceRestart, reason: 'server draining; resume elsewhere', error: 'shutting_down' };
    const draining: SessionIO[] = [];
    for (const io of [...this.sessions.values()]) {
      const snapshot = io.actor.getSnapshot();
      if (snapshot.status !== 'active') continue;
      if (drainMs > 0 && io.resumable && !snapshot.matches('handshake')) {
        draining.push(io);
        const transport = io.link?.transport;
        if (transport?.isOpen()) {
          // Straight to this connection: the next one (the resume) gets its own session.ready, not this.
          try {
            transport.send({ type: 'session.goaway', timeLeftMs: drainMs });
          } catch {
            /* closing anyway */
          }
          transport.close(goaway);
        }
        continue;
      }
      io.actor.send({ type: 'SHUTDOWN' });
    }
    const drainDeadline = Date.now() + drainMs;
    const busy = (io: SessionIO) => io.actor.getSnapshot().status === 'active' && !speakerIdle(io.actor);
    while (draining.some(busy) && Date.now() < drainDeadline) await new Promise((r) => setTimeout(r, 20));
    for (const io of draining) if (io.actor.getSnapshot().status === 'active') io.actor.send({ type: 'SHUTDOWN' });
    const deadline = Date.now() + timeoutMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const io of [...this.sessions.values()]) {
      io.actor.stop();
      io.link?.transport.close(closeRequest('shutting_down'));
      io.resumable?.log.release();
      io.recorder?.release();
    }
    this.sessions.clear();
    await Promise.all([...this.options.providers.map((p) => p.close()), ...(this.listen?.recognizers ?? []).map((r) => r.close())]);
  }
}

/** Nothing plays or waits in the session (no speaker yet, or its speaker idle): a drain can end it. */
function speakerIdle(actor: SessionActor): boolean {
  const speaker = speakerOf(actor.getSnapshot())?.getSnapshot();
  return !speaker || speaker.status !== 'active' || speaker.matches('idle');
}
