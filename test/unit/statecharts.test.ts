// The committed diagrams must match the machines they were generated from.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { statechartDocs } from '../../src/observability/statechartRegistry.js';
import { machineTables, machineToMermaid } from '../../src/observability/statechartDoc.js';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine } from '../../machines/speaker.machine.js';

describe('generated statecharts', () => {
  it('every committed page (Markdown and SVG) of both charts is up to date (run `npm run statecharts` after changing a machine)', async () => {
    const docs = await statechartDocs();
    expect(docs.map((d) => d.file)).toEqual([
      'docs/statecharts/connection.md',
      'docs/statecharts/connection.svg',
      'docs/statecharts/speaker.md',
      'docs/statecharts/speaker.svg',
    ]);
    for (const doc of docs) expect(readFileSync(doc.file, 'utf8'), doc.file).toBe(doc.content);
  });

  it('each SVG carries an element per state for live highlighting', async () => {
    const docs = await statechartDocs();
    const speaker = docs.find((d) => d.file.endsWith('speaker.svg'))!.content;
    for (const id of ['state.idle', 'state.active.live.connecting.synthesizing', 'state.active.live.streaming.flowing', 'state.active.stopping', 'state.ended', 'state.active']) {
      expect(speaker).toContain(`id="${id}"`);
    }
    const connection = docs.find((d) => d.file.endsWith('connection.svg'))!.content;
    for (const id of ['state.handshake', 'state.open', 'state.open.quiet', 'state.open.speaking', 'state.open.speaking.serving', 'state.open.speaking.closing', 'state.ended']) expect(connection).toContain(`id="${id}"`);
  });

  it('shows every speaker state, the STOP edge and the release wait', () => {
    const mermaid = machineToMermaid(speakerMachine);
    for (const state of ['idle', 'connecting', 'streaming', 'stopping', 'ended']) expect(mermaid).toContain(`state "${state}"`);
    expect(mermaid).toContain('active_live --> active_stopping : STOP [stopTargetsCurrent]');
    expect(mermaid).toContain('active_stopping --> active_releasing : UPSTREAM_RELEASED [isCurrentStream]');
  });

  it('shows the connection invoking the speaker and closing by the speaker’s end', () => {
    const mermaid = machineToMermaid(connectionMachine);
    expect(mermaid).toContain('handshake --> open : START');
    expect(mermaid).toContain('open_quiet --> open_speaking : SPEAK');
    expect(mermaid).toContain('open_speaking_serving --> open_speaking_closing : SHUTDOWN');
    expect(machineTables(connectionMachine)).toMatch(/\| open.speaking \| speaker \(speaker\) \|/);
  });

  it('names every action, with the reason and cause of every end (no anonymous assign)', () => {
    for (const machine of [connectionMachine, speakerMachine]) {
      const tables = machineTables(machine);
      expect(tables).not.toMatch(/\bassign\b|\binline\b/);
    }
    const speaker = machineTables(speakerMachine);
    for (const end of [
      'endCurrent(completed)',
      'endCurrent(timeout, first_audio_timeout)',
      'endCurrent(timeout, upstream_stalled)',
      'endEverything(superseded, interrupt)',
      'endEverything(failed, shutdown, shutting_down)',
      'endEverything(failed, client_stalled)',
      'endEverything(stopped, client_gone)',
      'endQueued(superseded, interrupt)',
      'endStopTargets',
      'endCurrentAsReported',
    ]) {
      expect(speaker).toContain(end);
    }
    expect(machineTables(connectionMachine)).toContain('closeConnection(1001, shutting_down)');
  });
});
