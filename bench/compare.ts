// `tsx bench/compare.ts A.json B.json`: do two bench runs agree? For every ratio to raw-ws in
// both (bench/results/*.json written by `npm run bench`, or the set-up ratios of two
// `npm run bench:cluster` runs), each run's median [min–max] across its rounds, and whether the
// two ranges overlap. Prints a markdown table.
import { readFileSync } from 'node:fs';
import type { Spread } from './common.js';
import type { BenchResults } from './report.js';

const [a, b] = process.argv.slice(2).map((file) => ({ file, r: JSON.parse(readFileSync(file, 'utf8')) as BenchResults }));
if (!a || !b || !a.r.ratios || !b.r.ratios) throw new Error('usage: tsx bench/compare.ts A.json B.json (runs made in rounds)');
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const rows: string[] = [];
let agree = 0;
let compared = 0;
for (const [key, ra] of Object.entries(a.r.ratios)) {
  const rb = b.r.ratios[key];
  if (!rb) continue;
  // bench/cluster.ts's results: one ratio per figure (a set-up over another), no contenders.
  if ('ratio' in ra && 'ratio' in rb) {
    const x = (ra as unknown as { ratio: Spread }).ratio;
    const y = (rb as unknown as { ratio: Spread }).ratio;
    if (!Number.isFinite(x.median) || !Number.isFinite(y.median)) continue;
    const overlap = x.min <= y.max && y.min <= x.max;
    compared++;
    if (overlap) agree++;
    rows.push(`| ${ra.label} | – | ${f(x.median)} [${f(x.min)}–${f(x.max)}] | ${f(y.median)} [${f(y.min)}–${f(y.max)}] | ${overlap ? 'yes' : '**no**'} |`);
    continue;
  }
  for (const c of Object.keys(ra.ratios)) {
    if (c === 'raw-ws' || !rb.ratios[c]) continue;
    const x = ra.ratios[c]!;
    const y = rb.ratios[c]!;
    if (!Number.isFinite(x.median) || !Number.isFinite(y.median)) continue;
    const overlap = x.min <= y.max && y.min <= x.max;
    compared++;
    if (overlap) agree++;
    const unit = ra.compare === 'difference' ? ' ms' : '';
    rows.push(`| ${ra.label} | ${c} | ${f(x.median)}${unit} [${f(x.min)}–${f(x.max)}] | ${f(y.median)}${unit} [${f(y.min)}–${f(y.max)}] | ${overlap ? 'yes' : '**no**'} |`);
  }
}
process.stdout.write(
  [
    `| figure | contender | run A: ratio to raw-ws (ms: difference to raw-ws), median [min–max] | run B | ranges overlap |`,
    '|---|---|---|---|---|',
    ...rows,
    '',
    `${agree} of ${compared} ratios agree (A: \`${a.r.command ?? a.file}\` at ${String(a.r.date).slice(11, 16)} UTC, ${a.r.rounds?.length ?? '?'} rounds; B: \`${b.r.command ?? b.file}\` at ${String(b.r.date).slice(11, 16)} UTC, ${b.r.rounds?.length ?? '?'} rounds).`,
    '',
  ].join('\n'),
);
