// Small statistics and rounding helpers shared by benchmarks, reports and the simulator. The bottom
// layer: this module imports nothing from the project.

/** Median: for an even count the mean of the two middle values; NaN for an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Upper median: for an even count the larger of the two middle values, so the result is always one of
 * the samples (a measured time, not an average of two); NaN for an empty list.
 */
export function medianUpper(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}

/** Arithmetic mean; NaN for an empty list. */
export function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Sample standard deviation (divided by n - 1): 0 for one value, NaN for none. */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return xs.length ? 0 : NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** `x` rounded to `digits` significant digits (for JSON records and summaries). */
export function round(x: number, digits: number): number {
  return Number(x.toPrecision(digits));
}

/** `x` rounded to `places` digits after the decimal point. */
export function roundTo(x: number, places: number): number {
  return Number(x.toFixed(places));
}
