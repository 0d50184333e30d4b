// Statechart documentation generated from a machine definition (never drawn by hand):
// a Mermaid stateDiagram-v2 and tables of what each state owns and how it is left.
import type { AnyStateMachine, AnyStateNode } from 'xstate';

interface Transition {
  event: string;
  guard: string;
  targets: string[];
  actions: string[];
  reenter: boolean;
}

const nodeId = (node: AnyStateNode) => node.path.join('_') || 'root';

/**
 * The arguments of a parameterised action or guard, as the diagram shows them: its short
 * values (codes, reasons, numbers), not free text (a message) or nested data; `…` when they
 * are computed from the event.
 */
function describeParams(params: unknown): string {
  if (params === undefined) return '';
  if (typeof params === 'function') return '(…)';
  if (params === null || typeof params !== 'object') return `(${String(params)})`;
  const shown = Object.values(params as Record<string, unknown>).filter(
    (v) => typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && !/\s/.test(v)),
  );
  // A value repeated (a timeout's code is also its cause) is shown once.
  const distinct = [...new Set(shown)];
  return distinct.length > 0 ? `(${distinct.join(', ')})` : '';
}

function describeAction(action: unknown): string {
  if (typeof action === 'string') return action;
  if (action && typeof action === 'object' && 'type' in action) {
    const { type, params } = action as { type: unknown; params?: unknown };
    return `${String(type)}${describeParams(params)}`;
  }
  if (typeof action === 'function') {
    const name = (action as { type?: string; name?: string }).type ?? (action as { name?: string }).name;
    return name && !name.startsWith('xstate.') ? name : (name ?? 'inline');
  }
  return 'inline';
}

function describeGuard(guard: unknown): string {
  if (!guard) return '';
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in (guard as object)) {
    const { type, params } = guard as { type: unknown; params?: unknown };
    return `${String(type)}${describeParams(params)}`;
  }
  return 'inline';
}

function eventLabel(node: AnyStateNode, eventType: string): string {
  if (eventType === '') return 'always';
  const delayed = node.after.find((t) => t.eventType === eventType);
  if (delayed) return `after ${String(delayed.delay)}`;
  return eventType;
}

function transitionsOf(node: AnyStateNode): Transition[] {
  const out: Transition[] = [];
  const add = (eventType: string, defs: ReadonlyArray<{ guard?: unknown; target?: ReadonlyArray<AnyStateNode> | undefined; actions: ReadonlyArray<unknown>; reenter?: boolean }>) => {
    for (const def of defs) {
      out.push({
        event: eventLabel(node, eventType),
        guard: describeGuard(def.guard),
        targets: (def.target ?? []).map(nodeId),
        actions: def.actions.map(describeAction),
        reenter: Boolean(def.reenter),
      });
    }
  };
  for (const [eventType, defs] of node.transitions) add(eventType, defs);
  if (node.always) add('', node.always);
  return out;
}

function walk(node: AnyStateNode, visit: (n: AnyStateNode) => void): void {
  visit(node);
  for (const child of Object.values(node.states) as AnyStateNode[]) walk(child, visit);
}

/** Mermaid stateDiagram-v2 text for the machine, nested states included. */
export function machineToMermaid(machine: AnyStateMachine): string {
  const lines: string[] = ['stateDiagram-v2'];
  const edges: string[] = [];
  const emit = (node: AnyStateNode, depth: number) => {
    const pad = '  '.repeat(depth);
    const children = Object.values(node.states) as AnyStateNode[];
    for (const child of children) {
      const id = nodeId(child);
      const grandChildren = Object.keys(child.states);
      if (grandChildren.length > 0) {
        lines.push(`${pad}state "${child.key}" as ${id} {`);
        emit(child, depth + 1);
        lines.push(`${pad}}`);
      } else {
        lines.push(`${pad}state "${child.key}" as ${id}`);
      }
      if (child.type === 'final') edges.push(`${id} --> [*]`);
    }
    const initial = node.initial?.target?.[0] as AnyStateNode | undefined;
    if (initial) lines.push(`${pad}[*] --> ${nodeId(initial)}`);
  };
  emit(machine.root, 1);
  walk(machine.root, (node) => {
    for (const t of transitionsOf(node)) {
      for (const target of t.targets) {
        const from = node === machine.root ? '[*]' : nodeId(node);
        edges.push(`${from} --> ${target} : ${t.event}${t.guard ? ` [${t.guard}]` : ''}`);
      }
    }
  });
  return [...lines, ...[...new Set(edges)].map((e) => `  ${e}`)].join('\n');
}

// XState implements `after` timers as raise/cancel entry/exit actions; the timers column shows them.
const timerPlumbing = new Set(['xstate.raise', 'xstate.cancel']);
const readableActions = (actions: unknown[]) =>
  actions
    .map(describeAction)
    .filter((a) => !timerPlumbing.has(a))
    .map((a) => a.replace(/^xstate\./, ''))
    .join(', ');

/** Markdown tables: what each state owns, and every transition with its guard and actions. */
export function machineTables(machine: AnyStateMachine): string {
  const own: string[] = ['| state | invokes (released on exit) | timers (cancelled on exit) | entry | exit |', '|---|---|---|---|---|'];
  const trans: string[] = ['| state | event | guard | target | actions |', '|---|---|---|---|---|'];
  walk(machine.root, (node) => {
    const name = node.path.join('.') || `(${machine.id})`;
    const invokes = node.invoke.map((i) => `${i.id} (${typeof i.src === 'string' ? i.src : 'inline'})`).join(', ');
    const timers = [...new Set(node.after.map((t) => String(t.delay)))].join(', ');
    own.push(`| ${name} | ${invokes || '–'} | ${timers || '–'} | ${readableActions(node.entry) || '–'} | ${readableActions(node.exit) || '–'} |`);
    for (const t of transitionsOf(node)) {
      const target = t.targets.map((x) => x.replaceAll('_', '.')).join(', ') || '(stays)';
      trans.push(`| ${name} | ${t.event} | ${t.guard || '–'} | ${target}${t.reenter ? ' (re-enter)' : ''} | ${t.actions.map((a) => a.replace(/^xstate\./, '')).join(', ') || '–'} |`);
    }
  });
  return `### What each state owns\n\n${own.join('\n')}\n\n### Transitions\n\n${trans.join('\n')}\n`;
}

/**
 * Graphviz DOT for the machine: compound states as clusters, atomic states as nodes. Every
 * state's element id is `state.<dotted path>` so a page can highlight the live state in the SVG.
 */
export function machineToDot(machine: AnyStateMachine): string {
  const lines = [
    `digraph ${JSON.stringify(machine.id)} {`,
    '  graph [rankdir=LR, compound=true, fontname="Helvetica", fontsize=11, nodesep=0.35, ranksep=0.5, bgcolor="transparent"];',
    '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#5d6780", fontname="Helvetica", fontsize=11];',
    '  edge [color="#8a93a8", fontname="Helvetica", fontsize=9, fontcolor="#5d6780"];',
  ];
  // An edge to or from a compound state attaches to its first atomic descendant, clipped at the cluster.
  const anchor = (node: AnyStateNode): AnyStateNode => {
    const children = Object.values(node.states) as AnyStateNode[];
    return children.length === 0 ? node : anchor((node.initial?.target?.[0] as AnyStateNode | undefined) ?? children[0]!);
  };
  const isCompound = (node: AnyStateNode) => Object.keys(node.states).length > 0;
  const emit = (node: AnyStateNode, depth: number) => {
    const pad = '  '.repeat(depth);
    for (const child of Object.values(node.states) as AnyStateNode[]) {
      const id = nodeId(child);
      const domId = `state.${child.path.join('.')}`;
      if (isCompound(child)) {
        lines.push(`${pad}subgraph cluster_${id} {`);
        lines.push(`${pad}  id=${JSON.stringify(domId)}; label=${JSON.stringify(child.key)}; style="rounded"; color="#c3c9d8"; fontcolor="#172033";`);
        emit(child, depth + 1);
        lines.push(`${pad}}`);
      } else {
        const shape = child.type === 'final' ? ', shape=doublecircle, fontsize=9' : '';
        lines.push(`${pad}${id} [id=${JSON.stringify(domId)}, label=${JSON.stringify(child.key)}${shape}];`);
      }
    }
  };
  emit(machine.root, 1);
  const edges = new Set<string>();
  walk(machine.root, (node) => {
    if (node === machine.root) return;
    for (const t of transitionsOf(node)) {
      for (const targetId of t.targets) {
        const target = machine.getStateNodeById(`${machine.id}.${targetId.replaceAll('_', '.')}`) as AnyStateNode;
        const from = anchor(node);
        const to = anchor(target);
        const attrs = [`label=${JSON.stringify(t.event + (t.guard ? ` [${t.guard}]` : ''))}`];
        if (isCompound(node)) attrs.push(`ltail=cluster_${nodeId(node)}`);
        if (isCompound(target) && !target.path.every((p, i) => node.path[i] === p)) attrs.push(`lhead=cluster_${nodeId(target)}`);
        edges.add(`  ${nodeId(from)} -> ${nodeId(to)} [${attrs.join(', ')}];`);
      }
    }
  });
  lines.push(...edges, '}');
  return lines.join('\n');
}

/** The whole committed page for one machine. */
export function statechartPage(title: string, machine: AnyStateMachine, source: string, svgFile?: string): string {
  return [
    `# ${title}`,
    '',
    `Generated from \`${source}\` by \`npm run statecharts\`; do not edit by hand.`,
    'A test fails when this page no longer matches the machine.',
    '',
    ...(svgFile ? [`![${title}](${svgFile})`, '', `The same chart as an SVG rendered offline (Graphviz, WASM): [\`${svgFile}\`](${svgFile}).`, ''] : []),
    '```mermaid',
    machineToMermaid(machine),
    '```',
    '',
    machineTables(machine),
  ].join('\n');
}
