// Every machine in machines/ and where its generated page lives.
import { sessionMachine } from '../../machines/session.machine.js';
import { statechartPage } from './statechartDoc.js';

export function statechartDocs(): Array<{ file: string; content: string }> {
  return [
    {
      file: 'docs/statecharts/session.md',
      content: statechartPage('Session statechart', sessionMachine, 'machines/session.machine.ts'),
    },
  ];
}
