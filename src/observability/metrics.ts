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
  let pausesSeen = 0;
  const pauses = new Counter({
    name: 'voxline_backpressure_pauses_total',
    help: 'Times an upstream was paused because its client was not reading.',
    registers: [registry],
    collect() {
      const now = engine.stats().backpressurePauses;
      if (now > pausesSeen) this.inc(now - pausesSeen);
      pausesSeen = now;
    },
  });
  void pauses;
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
  const deltas = new Map<string, number>();
  /** A counter fed from an engine total at scrape time. */
  const fromTotal = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = read();
        const before = deltas.get(name) ?? 0;
        if (now > before) this.inc(now - before);
        deltas.set(name, now);
      },
    });
  fromTotal('voxline_auth_failures_total', 'session.start frames refused for a missing or wrong key.', () => engine.stats().authFailures);
  fromTotal('voxline_rate_limited_total', 'Client frames refused by the message or text rate limits.', () => engine.stats().rateLimited);
  fromTotal('voxline_flood_cutoffs_total', 'Connections closed for flooding.', () => engine.stats().floodCutoffs);
  const refusedSeen = new Map<string, number>();
  new Counter({
    name: 'voxline_connections_refused_total',
    help: 'WebSocket upgrades refused before a session existed, by reason.',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      for (const [reason, n] of Object.entries(engine.stats().refusedConnections)) {
        const before = refusedSeen.get(reason) ?? 0;
        if (n > before) this.inc({ reason }, n - before);
        refusedSeen.set(reason, n);
      }
    },
  });
  const restartsSeen = new Map<string, number>();
  new Counter({
    name: 'voxline_synth_worker_restarts_total',
    help: 'Embedded-voice workers replaced after a crash or a hang.',
    labelNames: ['provider'],
    registers: [registry],
    collect() {
      for (const p of engine.providers) {
        const s = p.poolStats?.();
        if (!s) continue;
        const before = restartsSeen.get(p.name) ?? 0;
        this.inc({ provider: p.name }, s.restarts - before);
        restartsSeen.set(p.name, s.restarts);
      }
    },
  });

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
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    detach() {
      engine.off('utteranceAccepted', onAccepted);
      engine.off('utteranceEnded', onEnded);
      engine.off('providerError', onProviderError);
    },
  };
}
