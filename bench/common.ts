// Shared by the benchmark processes: the wall clock they agree on, and statistics.

/** Milliseconds since the epoch with sub-millisecond resolution, comparable across processes on one machine. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
}

export function summarize(values: number[]): Summary {
  return { n: values.length, p50: percentile(values, 50), p99: percentile(values, 99) };
}

/** Least-squares slope of y over x. */
export function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

/** `direct` is the baseline: the load generator fetching from the emulator itself, no gateway. */
export type ContenderName = 'raw-ws' | 'socket.io' | 'voxline' | 'voxline-cluster' | 'voxline-espeak' | 'voxline-gateway' | 'voxline-worker' | 'direct';

/** A figure across rounds: its median and its spread (min–max), and every round's value. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

export function spread(values: number[]): Spread {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  const mid = v.length >> 1;
  const median = v.length === 0 ? Number.NaN : v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v.length ? v[0]! : Number.NaN, max: v.length ? v.at(-1)! : Number.NaN, values };
}

export const sampleRate = 24_000;
export const emulatorVoice = 'troy';

/** The figures' texts: a one-sentence utterance, and the capacity figure's longer stream. */
export const shortText = 'Good morning, here is the weather for today.';
export const longText = 'This is a long answer that keeps streaming for a while, so that the load is real and the stop lands mid-stream.';
