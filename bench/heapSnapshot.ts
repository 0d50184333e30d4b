// Reading V8 heap snapshots (node:v8 writeHeapSnapshot) for the memory tools: bench/heapDiff.ts
// and bench/streamingMemory.ts.
import { readFileSync, rmSync } from 'node:fs';

export interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Parse a snapshot file, then delete it (KEEP_SNAPSHOTS=1 keeps it and prints its name). */
export function readSnapshot(file: string): HeapSnapshot {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshot;
  if (process.env.KEEP_SNAPSHOTS) process.stdout.write(`snapshot: ${file}\n`);
  else rmSync(file);
  return snap;
}

/** Count and self size of the snapshot's nodes per kind (`type:name`, e.g. `object:Actor`). */
export function objectKinds(snap: HeapSnapshot): Map<string, { count: number; size: number }> {
  const fields = snap.snapshot.meta.node_fields;
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const types = snap.snapshot.meta.node_types[0];
  const byKind = new Map<string, { count: number; size: number }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const kind = `${types[snap.nodes[i + typeAt]!]}:${snap.strings[snap.nodes[i + nameAt]!]!.slice(0, 60)}`;
    const e = byKind.get(kind) ?? { count: 0, size: 0 };
    e.count++;
    e.size += snap.nodes[i + sizeAt]!;
    byKind.set(kind, e);
  }
  return byKind;
}
