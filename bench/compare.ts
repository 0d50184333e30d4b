// `tsx bench/compare.ts A.json B.json [C.json …]`: do bench runs agree? For every ratio to raw-ws
// in all of them (bench/results/*.json written by `npm run bench`, or the set-up ratios of
// `npm run bench:cluster` runs), each run's median [min–max] across its rounds, and whether every
// two runs' ranges overlap (the pairs that do not are named). Prints a markdown table; a run is
// called by the letter of its file's name (`runD.json`: D), else A, B, C … in the order given.
import { readFileSync } from 'node:fs';
import type { Spread } from './common.js';
import type { BenchResults } from './report.js';

const runs = process.argv.slice(2).map((file) => ({ file, r: JSON.parse(readFileSync(file, 'utf8')) as BenchResults }));
if (runs.length < 2 || runs.some((run) => !run.r.ratios)) throw new Error('usage: tsx bench/compare.ts A.json B.json [C.json …] (runs made in rounds)');
const letter = (i: number) => /run([A-Z])\.json$/.exec(runs[i]!.file)?.[1] ?? String.fromCharCode(65 + i);
const f = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const pairs = runs.flatMap((_, i) => runs.slice(i + 1).map((__, k) => [i, i + 1 + k] as const));
const pairAgree = new Map(pairs.map((p) => [p, 0]));
const rows: string[] = [];
let agree = 0;
let compared = 0;

/** One row: the spreads of one ratio in every run, and the pairs whose ranges do not overlap. */
function row(label: string, contender: string, spreads: Spread[], unit: string): void {
  if (spreads.some((s) => !Number.isFinite(s.median))) return;
  const apart = pairs.filter(([i, k]) => !(spreads[i]!.min <= spreads[k]!.max && spreads[k]!.min <= spreads[i]!.max));
  for (const p of pairs) if (!apart.includes(p)) pairAgree.set(p, pairAgree.get(p)! + 1);
  compared++;
  if (apart.length === 0) agree++;
  const cells = spreads.map((s) => `${f(s.median)}${unit} [${f(s.min)}–${f(s.max)}]`);
  const verdict = apart.length === 0 ? 'yes' : `**no** (${apart.map(([i, k]) => `${letter(i)}–${letter(k)}`).join(', ')})`;
  rows.push(`| ${label} | ${contender} | ${cells.join(' | ')} | ${verdict} |`);
}

const [first] = runs;
for (const [key, ra] of Object.entries(first!.r.ratios!)) {
  const all = runs.map((run) => run.r.ratios![key]);
  if (all.some((r) => !r)) continue;
  // bench/cluster.ts's results: one ratio per figure (a set-up over another), no contenders.
  if ('ratio' in ra) {
    row(ra.label, '–', all.map((r) => (r as unknown as { ratio: Spread }).ratio), '');
    continue;
  }
  for (const c of Object.keys(ra.ratios)) {
    if (c === 'raw-ws' || all.some((r) => !r!.ratios[c])) continue;
    row(ra.label, c, all.map((r) => r!.ratios[c]!), ra.compare === 'difference' ? ' ms' : '');
  }
}
const described = runs.map(({ file, r }, i) => `${letter(i)}: \`${r.command ?? file}\` at ${String(r.date).slice(11, 16)} UTC, ${r.rounds?.length ?? '?'} rounds`);
process.stdout.write(
  [
    `| figure | contender | ${runs.map((_, i) => (i === 0 ? `run ${letter(i)}: ratio to raw-ws (ms: difference to raw-ws), median [min–max]` : `run ${letter(i)}`)).join(' | ')} | ranges overlap |`,
    `|---|---|${runs.map(() => '---|').join('')}---|`,
    ...rows,
    '',
    `${agree} of ${compared} ratios agree${runs.length > 2 ? ' in every pair of runs' : ''} (${described.join('; ')}).` +
      (runs.length > 2 ? ` Pair by pair: ${pairs.map((p) => `${letter(p[0])}–${letter(p[1])} ${pairAgree.get(p)} of ${compared}`).join(', ')}.` : ''),
    '',
  ].join('\n'),
);
