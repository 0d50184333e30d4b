// Every machine in machines/ and where its generated pages live: Markdown (Mermaid and
// tables, rendered by code hosts) and an SVG rendered offline by Graphviz compiled to WASM.
import { instance } from '@viz-js/viz';
import { sessionMachine } from '../../machines/session.machine.js';
import { machineToDot, statechartPage } from './statechartDoc.js';

export async function renderSvg(dot: string): Promise<string> {
  const viz = await instance();
  return viz.renderString(dot, { format: 'svg' });
}

export async function statechartDocs(): Promise<Array<{ file: string; content: string }>> {
  return [
    {
      file: 'docs/statecharts/session.md',
      content: statechartPage('Session statechart', sessionMachine, 'machines/session.machine.ts', 'session.svg'),
    },
    { file: 'docs/statecharts/session.svg', content: await renderSvg(machineToDot(sessionMachine)) },
  ];
}
