// Brute-force oracles shared by the partitioning tests.

/** Every split of costs into P contiguous non-empty parts: the smallest possible maximum part cost. */
export function bruteMinMax(costs: number[], P: number): number {
  let best = Infinity;
  const rec = (start: number, left: number, worst: number): void => {
    if (left === 1) { best = Math.min(best, Math.max(worst, costs.slice(start).reduce((a, b) => a + b, 0))); return; }
    for (let end = start + 1; end <= costs.length - (left - 1); end++) {
      rec(end, left - 1, Math.max(worst, costs.slice(start, end).reduce((a, b) => a + b, 0)));
    }
  };
  rec(0, P, 0);
  return best;
}
