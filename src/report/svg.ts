// What the SVG charts share: XML escaping, coordinates to one decimal, "nice" ticks, a centred moving
// average, and a curve panel's frame (box, grid, tick labels, axis names) with its scales.

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c] as string);
}

/** A coordinate in SVG text: one decimal is finer than a pixel. */
export function f(x: number): string { return x.toFixed(1); }

/** "Nice" tick positions (1, 2, 5 times a power of ten) inside [lo, hi]. */
export function ticks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/** Centred moving average over `window` points (shorter at the ends). */
export function movingAverage(points: readonly [number, number][], window: number): [number, number][] {
  if (window <= 1) return points.map(([x, y]) => [x, y]);
  const half = Math.floor(window / 2);
  const prefix = [0];
  for (const [, y] of points) prefix.push(prefix[prefix.length - 1] + y);
  return points.map(([x], i) => {
    const lo = Math.max(0, i - half);
    const hi = Math.min(points.length, i + half + 1);
    return [x, (prefix[hi] - prefix[lo]) / (hi - lo)];
  });
}

/** Points with both coordinates finite. */
export function finite(points: readonly [number, number][]): [number, number][] {
  return points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
}

/** Data-to-panel scales and the frame's SVG elements (a "no data" note when `empty`). */
export interface PanelFrame { sx: (x: number) => number; sy: (y: number) => number; parts: string[]; empty: boolean }

/**
 * The frame of a panel that plots `points`: ranges from the data (a flat range widened, y with a 5%
 * margin), the plot box, y grid lines and tick labels, x tick labels (whole numbers only with
 * `integerX`) and the axis names.
 */
export function panelFrame(points: readonly [number, number][],
  box: { width: number; height: number; pad: { left: number; right: number; top: number; bottom: number } }, xLabel: string, yLabel: string, integerX: boolean): PanelFrame {
  const { width, height, pad } = box;
  const pw = width - pad.left - pad.right;
  const ph = height - pad.top - pad.bottom;
  const all = finite(points);
  if (all.length === 0) {
    return { sx: (x) => x, sy: (y) => y, empty: true,
      parts: [`<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#888">no data</text>`] };
  }
  let [xmin, xmax] = extent(all.map((p) => p[0]));
  let [ymin, ymax] = extent(all.map((p) => p[1]));
  if (xmax === xmin) { xmin -= 1; xmax += 1; }
  if (ymax === ymin) { ymin -= 0.5; ymax += 0.5; }
  const yr = ymax - ymin;
  ymin -= yr * 0.05; ymax += yr * 0.05;
  const sx = (x: number): number => pad.left + ((x - xmin) / (xmax - xmin)) * pw;
  const sy = (y: number): number => pad.top + (1 - (y - ymin) / (ymax - ymin)) * ph;
  const parts = [`<rect x="${pad.left}" y="${pad.top}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`];
  for (const t of ticks(ymin, ymax, 5)) {
    parts.push(`<line x1="${pad.left}" x2="${pad.left + pw}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="#eee"/>`,
      `<text x="${pad.left - 4}" y="${f(sy(t) + 4)}" text-anchor="end">${tickLabel(t)}</text>`);
  }
  for (const t of ticks(xmin, xmax, 6).filter((v) => !integerX || Number.isInteger(v))) {
    parts.push(`<text x="${f(sx(t))}" y="${pad.top + ph + 14}" text-anchor="middle">${tickLabel(t)}</text>`);
  }
  parts.push(`<text x="${pad.left + pw / 2}" y="${pad.top + ph + 32}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
    `<text transform="translate(12,${pad.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`);
  return { sx, sy, parts, empty: false };
}

function extent(v: readonly number[]): [number, number] {
  let lo = Infinity; let hi = -Infinity;
  for (const x of v) { if (x < lo) lo = x; if (x > hi) hi = x; }
  return [lo, hi];
}

function tickLabel(t: number): string {
  if (t !== 0 && (Math.abs(t) >= 1e5 || Math.abs(t) < 1e-3)) return t.toExponential(1);
  return String(Number(t.toPrecision(4)));
}
