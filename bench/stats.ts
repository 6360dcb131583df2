/** Summaries of repeated measurements and their formatting for the report. */

export interface Summary {
  count: number;
  median: number;
  min: number;
  max: number;
  p10: number;
  p90: number;
}

/** Returns the q-quantile (q from 0 to 1) of sorted samples, interpolated linearly between neighbors. */
function quantile(sorted: readonly number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const below = sorted[lower]!;
  const above = sorted[upper]!;
  return below + (above - below) * (position - lower);
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error("cannot summarize an empty list of samples");
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    median: quantile(sorted, 0.5),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    p10: quantile(sorted, 0.1),
    p90: quantile(sorted, 0.9),
  };
}

/** Formats milliseconds: whole from 100 ms, with one decimal from 10 ms and two below, such as "412 ms" or "38.5 ms". */
export function formatMs(ms: number): string {
  if (ms >= 100) return `${Math.round(ms)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** Formats a summary of milliseconds as "median (min–max)". */
export function formatSummaryMs(summary: Summary): string {
  return `${formatMs(summary.median)} (${formatMs(summary.min)}–${formatMs(summary.max)})`;
}

/** Formats a ratio such as 1.234 as "1.23×". */
export function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}×`;
}
