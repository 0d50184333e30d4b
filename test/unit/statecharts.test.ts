// The committed diagrams must match the machines they were generated from.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { statechartDocs } from '../../src/observability/statechartRegistry.js';
import { machineToMermaid } from '../../src/observability/statechartDoc.js';
import { sessionMachine } from '../../machines/session.machine.js';

describe('generated statecharts', () => {
  it('every committed page (Markdown and SVG) is up to date (run `npm run statecharts` after changing a machine)', async () => {
    const docs = await statechartDocs();
    expect(docs.map((d) => d.file)).toEqual(['docs/statecharts/session.md', 'docs/statecharts/session.svg']);
    for (const doc of docs) expect(readFileSync(doc.file, 'utf8'), doc.file).toBe(doc.content);
  });

  it('the SVG carries an element per state for live highlighting', async () => {
    const svg = (await statechartDocs()).find((d) => d.file.endsWith('.svg'))!.content;
    for (const id of ['state.idle', 'state.active.live.connecting.synthesizing', 'state.active.live.streaming.flowing', 'state.active.stopping', 'state.ended', 'state.active']) {
      expect(svg).toContain(`id="${id}"`);
    }
  });

  it('shows every session state, the STOP edge and the release wait', () => {
    const mermaid = machineToMermaid(sessionMachine);
    for (const state of ['idle', 'connecting', 'streaming', 'stopping', 'ended']) expect(mermaid).toContain(`state "${state}"`);
    expect(mermaid).toContain('active_live --> active_stopping : STOP [stopTargetsCurrent]');
    expect(mermaid).toContain('active_stopping --> active_releasing : UPSTREAM_RELEASED [isCurrentStream]');
  });
});
