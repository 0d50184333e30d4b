// The committed diagrams must match the machines they were generated from.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { statechartDocs } from '../../src/observability/statechartRegistry.js';
import { machineToMermaid } from '../../src/observability/statechartDoc.js';
import { sessionMachine } from '../../machines/session.machine.js';

describe('generated statecharts', () => {
  for (const doc of statechartDocs()) {
    it(`${doc.file} is up to date (run \`npm run statecharts\` after changing a machine)`, () => {
      expect(readFileSync(doc.file, 'utf8')).toBe(doc.content);
    });
  }

  it('shows every session state, the STOP edge and the release wait', () => {
    const mermaid = machineToMermaid(sessionMachine);
    for (const state of ['idle', 'connecting', 'streaming', 'stopping', 'ended']) expect(mermaid).toContain(`state "${state}"`);
    expect(mermaid).toContain('active_live --> active_stopping : STOP [stopTargetsCurrent]');
    expect(mermaid).toContain('active_stopping --> active_releasing : UPSTREAM_RELEASED [isCurrentStream]');
  });
});
