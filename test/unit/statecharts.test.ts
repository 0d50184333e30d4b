// The committed diagrams must match the machines they were generated from.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { statechartDocs } from '../../src/observability/statechartRegistry.js';
import { machineTables, machineToMermaid } from '../../src/observability/statechartDoc.js';
import { connectionMachine } from '../../machines/connection.machine.js';
import { speakerMachine } from '../../machines/speaker.machine.js';

describe('generated statecharts', () => {
  it('every committed page (Markdown and SVG) of every chart is up to date (run `npm run statecharts` after changing a machine)', async () => {
    const docs = await statechartDocs();
    expect(docs.map((d) => d.file)).toEqual([
      'docs/statecharts/connection.md',
      'docs/statecharts/connection.svg',
      'docs/statecharts/speaker.md',
      'docs/statecharts/speaker.svg',
      'docs/statecharts/listener.md',
      'docs/statecharts/listener.svg',
      'docs/statecharts/turn.md',
      'docs/statecharts/turn.svg',
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
    for (const id of ['state.handshake', 'state.open', 'state.open.speech.quiet', 'state.open.speech.speaking', 'state.open.speech.speaking.serving', 'state.open.speech.speaking.closing', 'state.open.hearing.listening', 'state.ended']) expect(connection).toContain(`id="${id}"`);
    const listener = docs.find((d) => d.file.endsWith('listener.svg'))!.content;
    for (const id of ['state.quiet', 'state.turn.starting.voiced', 'state.turn.speaking.unvoiced', 'state.turn.finalizing', 'state.closed']) expect(listener).toContain(`id="${id}"`);
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
    expect(mermaid).toContain('open_speech_quiet --> open_speech_speaking : SPEAK');
    expect(mermaid).toContain('open_speech_speaking_serving --> open_speech_speaking_closing : SHUTDOWN');
    expect(machineTables(connectionMachine)).toMatch(/\| open.speech.speaking \| speaker \(speaker\) \|/);
    expect(mermaid).toContain('open_hearing_choosing --> open_hearing_listening : always [listenGranted]');
    expect(machineTables(connectionMachine)).toMatch(/\| open.hearing.listening \| listener \(listener\) \|/);
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
