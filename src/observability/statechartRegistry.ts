// Every machine in machines/ and where its generated pages live: Markdown (Mermaid and
// tables, rendered by code hosts) and an SVG rendered offline by Graphviz compiled to WASM.
import { instance } from '@viz-js/viz';
import type { AnyStateMachine } from 'xstate';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine } from '../../machines/speaker.machine.js';
import { listenerMachine } from '../../machines/listener.machine.js';
import { turnMachine } from '../../machines/turn.machine.js';
import { machineToDot, statechartPage } from './statechartDoc.js';

export async function renderSvg(dot: string): Promise<string> {
  const viz = await instance();
  return viz.renderString(dot, { format: 'svg' });
}

/** The charts, parent first: the connection invokes the speaker, the listener (through its host) and the turn. */
export const statecharts: ReadonlyArray<{ name: string; title: string; machine: AnyStateMachine; source: string }> = [
  { name: 'connection', title: 'Connection statechart', machine: connectionMachine, source: 'machines/connection.machine.ts' },
  { name: 'speaker', title: 'Speaker statechart', machine: speakerMachine, source: 'machines/speaker.machine.ts' },
  { name: 'listener', title: 'Listener statechart', machine: listenerMachine, source: 'machines/listener.machine.ts' },
  { name: 'turn', title: 'Turn statechart', machine: turnMachine, source: 'machines/turn.machine.ts' },
];

export async function statechartDocs(): Promise<Array<{ file: string; content: string }>> {
  const docs: Array<{ file: string; content: string }> = [];
  for (const chart of statecharts) {
    docs.push(
      { file: `docs/statecharts/${chart.name}.md`, content: statechartPage(chart.title, chart.machine, chart.source, `${chart.name}.svg`) },
      { file: `docs/statecharts/${chart.name}.svg`, content: await renderSvg(machineToDot(chart.machine)) },
    );
  }
  return docs;
}
