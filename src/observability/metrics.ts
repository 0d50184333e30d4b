// Prometheus metrics (prom-client) for one engine: live sessions and utterances, ends by
// reason, time to first audio, STOP → speak.end, provider errors, circuit state, bytes sent,
// backpressure pauses, synth worker pool. One registry per engine, so embedders and tests
// can run several.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { VoiceEngine } from '../engine/voiceEngine.js';

export interface EngineMetrics {
  registry: Registry;
  /** The exposition text for GET /metrics. */
  render(): Promise<string>;
  contentType: string;
  /** Stop listening to the engine. */
  detach(): void;
}

const circuitValue = { closed: 0, 'half-open': 1, open: 2 } as const;

export function createEngineMetrics(engine: VoiceEngine, options: { processMetrics?: boolean } = {}): EngineMetrics {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'voxline_' });

  new Gauge({
    name: 'voxline_sessions',
    help: 'Live sessions (WebSocket connections and HTTP speech requests).',
    registers: [registry],
    collect() {
      this.set(engine.stats().sessions);
    },
  });
  new Gauge({
    name: 'voxline_utterances_live',
    help: 'Accepted utterances that have not ended yet.',
    registers: [registry],
    collect() {
      const s = engine.stats();
      this.set(s.utterancesAccepted - s.utterancesEnded);
    },
  });
  new Gauge({
    name: 'voxline_upstream_jobs',
    help: 'Upstream synthesis jobs not yet released.',
    registers: [registry],
    collect() {
      this.set(engine.stats().upstreamJobs);
    },
  });
  const accepted = new Counter({ name: 'voxline_utterances_accepted_total', help: 'Utterances accepted.', registers: [registry] });
  const ended = new Counter({ name: 'voxline_utterances_ended_total', help: 'Utterances ended, by wire reason.', labelNames: ['reason'], registers: [registry] });
  const firstAudio = new Histogram({
    name: 'voxline_first_audio_seconds',
    help: 'From acceptance to the first audio frame.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const stopToEnd = new Histogram({
    name: 'voxline_stop_to_end_seconds',
    help: 'From a STOP frame arriving to its speak.end going out.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers: [registry],
  });
  const bytes = new Counter({ name: 'voxline_audio_bytes_sent_total', help: 'PCM bytes sent to clients.', registers: [registry] });
  const providerErrors = new Counter({
    name: 'voxline_provider_errors_total',
    help: 'Provider failures, by provider and code.',
    labelNames: ['provider', 'code'],
    registers: [registry],
  });
  new Gauge({
    name: 'voxline_circuit_state',
    help: 'Circuit breaker per provider: 0 closed, 1 half-open, 2 open.',
    labelNames: ['provider'],
    registers: [registry],
    collect() {
      for (const [provider, guard] of engine.guards) this.set({ provider }, circuitValue[guard.state]);
    },
  });
  new Gauge({
    name: 'voxline_synth_workers',
    help: 'Embedded-voice workers, by state.',
    labelNames: ['provider', 'state'],
    registers: [registry],
    collect() {
      for (const p of engine.providers) {
        const s = p.poolStats?.();
        if (!s) continue;
        this.set({ provider: p.name, state: 'total' }, s.size);
        this.set({ provider: p.name, state: 'warm' }, s.warm);
        this.set({ provider: p.name, state: 'busy' }, s.busy);
        this.set({ provider: p.name, state: 'waiting_jobs' }, s.waiting);
      }
    },
  });
  new Gauge({
    name: 'voxline_held_audio_bytes',
    help: 'Audio held inside the server for clients not reading yet (look-ahead pieces and synthesis job queues).',
    registers: [registry],
    collect() {
      this.set(engine.stats().heldAudioBytes);
    },
  });
  /**
   * A counter fed at scrape time from totals the engine keeps, one per label value: it adds
   * what each total grew by since the last scrape.
   */
  const fromTotals = (name: string, help: string, labelName: string | null, read: () => Array<[string, number]>) => {
    const seen = new Map<string, number>();
    return new Counter({
      name,
      help,
      labelNames: labelName ? [labelName] : [],
      registers: [registry],
      collect() {
        for (const [label, now] of read()) {
          const grew = now - (seen.get(label) ?? 0);
          seen.set(label, now);
          if (grew < 0) continue; // a zero still creates the series
          if (labelName) this.inc({ [labelName]: label }, grew);
          else this.inc(grew);
        }
      },
    });
  };
  const total = (read: () => number) => () => [['', read()]] as Array<[string, number]>;
  // Listening (wire contract v2), from the engine's listening totals.
  new Gauge({
    name: 'voxline_listeners',
    help: 'Sessions listening now (one listener each).',
    registers: [registry],
    collect() {
      this.set(engine.stats().listening.listeners);
    },
  });
  fromTotals('voxline_listen_turns_total', 'User turns heard (input.speech_started sent).', null, total(() => engine.stats().listening.turns));
  fromTotals('voxline_barge_ins_total', 'Utterances interrupted because the user spoke over them.', null, total(() => engine.stats().listening.bargeIns));
  fromTotals('voxline_listened_audio_seconds_total', 'Microphone audio accepted by the mic gates, in seconds.', null, total(() => engine.stats().listening.audioSeconds));
  fromTotals('voxline_recognizer_errors_total', 'Recognition jobs that failed, by error code.', 'code', () => Object.entries(engine.stats().listening.recognizerErrors));
  // The agent turn (wire contract v2).
  new Gauge({
    name: 'voxline_agent_replies',
    help: 'Replies being written now (one language-model request each).',
    registers: [registry],
    collect() {
      this.set(engine.stats().agent.replies);
    },
  });
  fromTotals('voxline_agent_turns_total', 'Agent turns ended, by turn.end status.', 'status', () => Object.entries(engine.stats().agent.turnsEnded));
  fromTotals('voxline_model_errors_total', 'Replies the language model failed, by error code.', 'code', () => Object.entries(engine.stats().agent.modelErrors));
  const voiceToVoice = new Histogram({
    name: 'voxline_voice_to_voice_seconds',
    help: 'From the end of the user speech (input.speech_stopped) to the first audio of the reply.',
    buckets: [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10],
    registers: [registry],
  });
  fromTotals('voxline_backpressure_pauses_total', 'Times an upstream was paused because its client was not reading.', null, total(() => engine.stats().backpressurePauses));
  fromTotals('voxline_auth_failures_total', 'session.start frames refused for a missing or wrong key.', null, total(() => engine.stats().authFailures));
  fromTotals('voxline_rate_limited_total', 'Client frames refused by the message or text rate limits.', null, total(() => engine.stats().rateLimited));
  fromTotals('voxline_flood_cutoffs_total', 'Connections closed for flooding.', null, total(() => engine.stats().floodCutoffs));
  fromTotals('voxline_connections_refused_total', 'WebSocket upgrades refused before a session existed, by reason.', 'reason', () =>
    Object.entries(engine.stats().refusedConnections),
  );
  fromTotals('voxline_provider_busy_refusals_total', 'New utterances refused at once because too many requests already wait for a provider (provider_busy).', 'provider', () =>
    engine.providers.flatMap((p) => {
      const s = p.poolStats?.();
      return s?.refusedBusy !== undefined ? [[p.name, s.refusedBusy] as [string, number]] : [];
    }),
  );
  fromTotals('voxline_synth_worker_restarts_total', 'Embedded-voice workers replaced after a crash or a hang.', 'provider', () =>
    engine.providers.flatMap((p) => {
      const s = p.poolStats?.();
      return s ? [[p.name, s.restarts] as [string, number]] : [];
    }),
  );

  // Resuming sessions (wire contract v2).
  new Gauge({
    name: 'voxline_sessions_detached',
    help: 'Resumable sessions whose connection dropped, waiting (at most the resume window) for their client.',
    registers: [registry],
    collect() {
      this.set(engine.stats().detachedSessions);
    },
  });
  new Gauge({
    name: 'voxline_outbound_log_bytes',
    help: 'Bytes of sent frames kept for resumes (bounded per session).',
    registers: [registry],
    collect() {
      this.set(engine.stats().outboundLogBytes);
    },
  });
  fromTotals('voxline_resumes_total', 'session.resume frames by outcome: succeeded, relayed (to the owner), moved (taken over from a dead gateway), or why it failed.', 'outcome', () => Object.entries(engine.stats().resumes));
  fromTotals('voxline_frames_replayed_total', 'Frames (audio and control) sent again to resumed clients.', null, total(() => engine.stats().framesReplayed));

  const onAccepted = () => accepted.inc();
  const onEnded: Parameters<typeof engine.on<'utteranceEnded'>>[1] = (e) => {
    ended.inc({ reason: e.reason });
    bytes.inc(e.stats.bytes);
    if (e.stats.firstAudioMs !== null) firstAudio.observe(e.stats.firstAudioMs / 1000);
    if (e.stopToEndMs !== undefined) stopToEnd.observe(e.stopToEndMs / 1000);
  };
  const onProviderError: Parameters<typeof engine.on<'providerError'>>[1] = (e) => providerErrors.inc({ provider: e.provider, code: e.error.code });
  engine.on('utteranceAccepted', onAccepted);
  engine.on('utteranceEnded', onEnded);
  engine.on('providerError', onProviderError);
  const onVoiceToVoice: Parameters<typeof engine.on<'voiceToVoice'>>[1] = (e) => voiceToVoice.observe(e.ms / 1000);
  engine.on('voiceToVoice', onVoiceToVoice);
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    detach() {
      engine.off('utteranceAccepted', onAccepted);
      engine.off('utteranceEnded', onEnded);
      engine.off('providerError', onProviderError);
      engine.off('voiceToVoice', onVoiceToVoice);
    },
  };
}
