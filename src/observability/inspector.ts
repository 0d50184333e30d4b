// Live inspection of every session, offline, on XState 5's own `inspect` option (the
// @xstate/inspect package only works with XState 4; Stately's inspector needs their site).
// Inspection events are redacted at the source to event types and state paths: no event
// payload (text, tokens, audio) and no context ever leaves this module. The page at
// /inspect draws the chosen session's statechart (the generated SVG) with its current state
// highlighted, and the event log beside it, from a Server-Sent Events stream. A session is up to
// three charts: the connection, the speaker it invokes once open, and the listener of a session
// granted listening (its own actor system on the media clock, observed through the listener
// host's `inspect` hook); each has its SVG and its states. A listener's VOICE events (one per VAD
// frame, 30-50 a second) are shown only where they change its state, as audio frames are.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { InspectionEvent } from 'xstate';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine } from '../../machines/speaker.machine.js';
import { listenerMachine } from '../../machines/listener.machine.js';
import { statePath } from '../../machines/sessionPhase.js';
import { machineToDot } from './statechartDoc.js';
import { renderSvg } from './statechartRegistry.js';
import { requestTarget } from '../server/requestTarget.js';


/** What leaves the process about a session: names only. */
export type InspectionRecord =
  | { kind: 'session'; sessionId: string; at: number; status: 'started' | 'ended' }
  | { kind: 'event'; sessionId: string; at: number; event: string; to: 'session' | 'speaker' | 'upstream' | 'listener' | 'other' }
  | { kind: 'state'; sessionId: string; at: number; chart: ChartName; state: string };

export type ChartName = 'connection' | 'speaker' | 'listener';
const chartMachines = { connection: connectionMachine, speaker: speakerMachine, listener: listenerMachine };
const chartPaths: Record<string, ChartName> = {
  '/inspect/statechart.svg': 'connection',
  '/inspect/speaker.svg': 'speaker',
  '/inspect/listener.svg': 'listener',
};

/** Listener events too frequent to log one by one: shown only with the state change they cause. */
const frameEvents = new Set(['VOICE']);

export class SessionInspector {
  private readonly recent = new Map<string, InspectionRecord[]>();
  private readonly clients = new Set<ServerResponse>();
  private readonly svgs = new Map<ChartName, Promise<string>>();
  private readonly keep: number;

  private readonly keepSessions: number;
  private readonly maxUnreadBytes: number;
  private readonly maxViewers: number;

  constructor(
    options: {
      keepPerSession?: number;
      keepSessions?: number;
      /** Bytes a viewer may leave unread before it is dropped: one that stops reading costs this, not the whole stream (1 MiB). */
      maxUnreadBytes?: number;
      /** Viewers at once; more get 503: the inspector is for people, not fleets (16). */
      maxViewers?: number;
    } = {},
  ) {
    this.keep = options.keepPerSession ?? 200;
    this.keepSessions = options.keepSessions ?? 50;
    this.maxUnreadBytes = options.maxUnreadBytes ?? 1024 * 1024;
    this.maxViewers = options.maxViewers ?? 16;
  }

  /** Event-stream viewers connected now. */
  get viewers(): number {
    return this.clients.size;
  }

  /** The `inspect` observer for one session actor. */
  observe(sessionId: string): (event: InspectionEvent) => void {
    this.publish({ kind: 'session', sessionId, at: Date.now(), status: 'started' });
    const lastState = { connection: '', speaker: '', listener: '' };
    return (inspection) => {
      const record = redact(sessionId, inspection);
      if (!record) return;
      if (record.kind === 'state') {
        if (record.state === lastState[record.chart]) return;
        lastState[record.chart] = record.state;
      }
      this.publish(record);
    };
  }

  /**
   * The `inspect` observer for one session's listener actor (the root of its own system). A VOICE
   * event is held until the snapshot after it: published only when that snapshot moved the state.
   */
  observeListener(sessionId: string): (event: InspectionEvent) => void {
    let lastState = '';
    let heldFrame: InspectionRecord | null = null;
    return (inspection) => {
      const record = redact(sessionId, inspection, 'listener');
      if (!record) return;
      if (record.kind === 'event') {
        if (record.to === 'listener' && frameEvents.has(record.event)) heldFrame = record;
        else this.publish(record);
        return;
      }
      if (record.kind !== 'state') return;
      const frame = heldFrame;
      heldFrame = null;
      if (record.state === lastState) return;
      lastState = record.state;
      if (frame) this.publish(frame);
      this.publish(record);
    };
  }

  sessionEnded(sessionId: string): void {
    this.publish({ kind: 'session', sessionId, at: Date.now(), status: 'ended' });
  }

  /** Serves /inspect (page), /inspect/events (SSE) and /inspect/statechart.svg. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = requestTarget(req)?.pathname;
    if (path === undefined) return false;
    if (path === '/inspect') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
      res.end(inspectorPage);
      return true;
    }
    const chart: ChartName | undefined = chartPaths[path];
    if (chart) {
      let svg = this.svgs.get(chart);
      if (!svg) this.svgs.set(chart, (svg = renderSvg(machineToDot(chartMachines[chart]))));
      svg.then(
        (svg) => {
          res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'no-cache' });
          res.end(svg);
        },
        () => {
          res.writeHead(500).end();
        },
      );
      return true;
    }
    if (path === '/inspect/events') {
      if (this.clients.size >= this.maxViewers) {
        res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '5' }).end('too many inspector viewers');
        return true;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      // The headers and the recent history, newest last, no more than half the unread allowance.
      const history: string[] = [];
      let bytes = 0;
      const sessions = [...this.recent.values()];
      outer: for (let s = sessions.length - 1; s >= 0; s--) {
        const records = sessions[s]!;
        for (let i = records.length - 1; i >= 0; i--) {
          const line = `data: ${JSON.stringify(records[i])}\n\n`;
          bytes += line.length;
          if (bytes > this.maxUnreadBytes / 2) break outer;
          history.push(line);
        }
      }
      res.write(': voxline inspection stream\n\n' + history.reverse().join(''));
      this.clients.add(res);
      res.once('close', () => this.clients.delete(res));
      return true;
    }
    return false;
  }

  /** Close every event stream (shutdown). */
  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
  }

  private publish(record: InspectionRecord): void {
    let list = this.recent.get(record.sessionId);
    if (!list) {
      list = [];
      this.recent.set(record.sessionId, list);
      // Forget the oldest sessions beyond the bound.
      while (this.recent.size > this.keepSessions) this.recent.delete(this.recent.keys().next().value!);
    }
    list.push(record);
    if (list.length > this.keep) list.splice(0, list.length - this.keep);
    if (this.clients.size === 0) return;
    const line = `data: ${JSON.stringify(record)}\n\n`;
    for (const c of this.clients) {
      if (c.writableLength > this.maxUnreadBytes) {
        // A viewer that stopped reading is dropped; the page reconnects by itself (EventSource).
        this.clients.delete(c);
        c.destroy();
        continue;
      }
      c.write(line);
    }
  }
}

/**
 * Keep names, drop payloads. Returns null for what is not worth showing. `system` says whose actor
 * system the event comes from: the session's (the connection at its root) or a listener's.
 */
export function redact(sessionId: string, inspection: InspectionEvent, system: 'session' | 'listener' = 'session'): InspectionRecord | null {
  const at = Date.now();
  const ref = inspection.actorRef as { id?: string; _parent?: unknown };
  const isRoot = ref._parent === undefined;
  const chart: ChartName | null = isRoot ? (system === 'listener' ? 'listener' : 'connection') : system === 'session' && ref.id === 'speaker' ? 'speaker' : null;
  if (inspection.type === '@xstate.snapshot') {
    const snapshot = inspection.snapshot as { value?: unknown; status?: string };
    if (!chart || snapshot.value === undefined) return null;
    return { kind: 'state', sessionId, at, chart, state: snapshot.status === 'done' ? 'ended' : statePath(snapshot.value) };
  }
  if (inspection.type === '@xstate.event') {
    const type = (inspection.event as { type?: unknown }).type;
    if (typeof type !== 'string') return null;
    const to = chart === 'connection' ? 'session' : chart ?? (ref.id === 'upstream' ? 'upstream' : 'other');
    return { kind: 'event', sessionId, at, event: type.replace(/[^\w.:@-]/g, '?').slice(0, 80), to };
  }
  return null;
}

const inspectorPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>voxline inspector</title>
<style>
  :root { font-family: Inter, system-ui, sans-serif; color: #172033; background: #eef1f7; }
  body { margin: 0; display: grid; grid-template-columns: 260px 1fr 340px; height: 100vh; }
  aside, section { overflow: auto; padding: 16px; }
  aside { background: #fff; border-right: 1px solid #dfe3ec; }
  h1 { font-size: 16px; margin: 0 0 12px; } h2 { font-size: 12px; text-transform: uppercase; color: #5d6780; letter-spacing: .08em; }
  .session { padding: 8px 10px; border-radius: 8px; cursor: pointer; font: 12px ui-monospace, monospace; margin-bottom: 4px; }
  .session:hover { background: #f1f4fe; } .session.sel { background: #3358e0; color: #fff; } .session.ended { opacity: .55; }
  .chart svg { width: 100%; height: auto; background: #fff; border-radius: 12px; border: 1px solid #dfe3ec; }
  .chart .on > path, .chart .on > polygon { stroke: #3358e0; stroke-width: 2.5px; fill: #e8edff; }
  #log { background: #fff; border-left: 1px solid #dfe3ec; font: 12px ui-monospace, monospace; }
  #log div { padding: 2px 0; border-bottom: 1px solid #f1f3f8; } #log .state { color: #3358e0; font-weight: 600; }
  #current { font: 13px ui-monospace, monospace; margin: 8px 0 12px; }
</style></head>
<body>
<aside><h1>voxline inspector</h1><h2>Sessions</h2><div id="sessions"></div></aside>
<section><h2>Statecharts</h2><div id="current">select a session</div><div class="chart" id="connection"></div><div class="chart" id="speaker"></div><div class="chart" id="listener"></div></section>
<section id="log"><h2>Events</h2><div id="events"></div></section>
<script type="module">
const sessions = new Map(); let selected = null;
const charts = { connection: document.getElementById('connection'), speaker: document.getElementById('speaker'), listener: document.getElementById('listener') };
charts.connection.innerHTML = await (await fetch('/inspect/statechart.svg')).text();
charts.speaker.innerHTML = await (await fetch('/inspect/speaker.svg')).text();
charts.listener.innerHTML = await (await fetch('/inspect/listener.svg')).text();
function highlight(states) {
  for (const [name, chart] of Object.entries(charts)) {
    for (const el of chart.querySelectorAll('.on')) el.classList.remove('on');
    const parts = (states?.[name] ?? '').split('.').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) chart.querySelector('[id="state.' + parts.slice(0, i).join('.') + '"]')?.classList.add('on');
  }
  document.getElementById('current').textContent = states ? [states.connection, states.speaker, states.listener].filter(Boolean).join(' / ') : '';
}
function renderList() {
  const box = document.getElementById('sessions'); box.replaceChildren();
  for (const [id, s] of [...sessions].reverse()) {
    const d = document.createElement('div'); d.className = 'session' + (id === selected ? ' sel' : '') + (s.ended ? ' ended' : '');
    d.textContent = id.slice(0, 8) + '  ' + (s.states.speaker || s.states.connection || ''); d.onclick = () => select(id); box.append(d);
  }
}
function renderLog() {
  const box = document.getElementById('events'); box.replaceChildren();
  for (const r of (sessions.get(selected)?.records ?? []).slice(-200).reverse()) {
    const d = document.createElement('div');
    if (r.kind === 'state') { d.className = 'state'; d.textContent = '→ ' + r.chart + ': ' + r.state; }
    else if (r.kind === 'event') d.textContent = r.event + (r.to === 'session' ? '' : '  → ' + r.to);
    else d.textContent = 'session ' + r.status;
    box.append(d);
  }
}
function select(id) { selected = id; highlight(sessions.get(id)?.states); renderList(); renderLog(); }
const source = new EventSource('/inspect/events');
source.onmessage = (m) => {
  const r = JSON.parse(m.data);
  const s = sessions.get(r.sessionId) ?? { records: [], states: { connection: '', speaker: '', listener: '' }, ended: false };
  sessions.set(r.sessionId, s); s.records.push(r);
  if (r.kind === 'state') s.states[r.chart] = r.state;
  if (r.kind === 'session' && r.status === 'ended') s.ended = true;
  if (!selected || (sessions.get(selected)?.ended && !s.ended)) selected = r.sessionId;
  if (r.sessionId === selected) { highlight(s.states); renderLog(); }
  renderList();
};
</script></body></html>`;
