// `npm run statecharts`: regenerate docs/statecharts/ from the machine definitions.
import { writeFileSync, mkdirSync } from 'node:fs';
import { statechartDocs } from '../src/observability/statechartRegistry.js';

mkdirSync('docs/statecharts', { recursive: true });
for (const doc of await statechartDocs()) {
  writeFileSync(doc.file, doc.content);
  process.stdout.write(`wrote ${doc.file}\n`);
}
