// Several runs' curves in one standalone SVG (the reproductions compare methods): left panel the
// smoothed training loss against epochs (fractional, so runs with different batch sizes line up),
// right panel the test accuracy per epoch. One colour per run, legend below the panels.
import { movingAverage, ticks } from "./loss-curve-svg.js";

export interface RunCurves {
  name: string;
  /** [epoch (fractional), training loss] per logged step. */
  loss: [number, number][];
  /** [epoch, test accuracy in 0..1] per epoch. */
  acc: [number, number][];
}

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"];
const PANEL_W = 440, PANEL_H = 300, PAD = { left: 56, right: 14, top: 30, bottom: 40 };

export function compareCurvesSvg(runs: readonly RunCurves[], title: string): string {
  const legendRows = Math.ceil(runs.length / 3);
  const W = 2 * PANEL_W + 30, H = PANEL_H + 40 + legendRows * 18 + 10;
  const smoothed = runs.map((r) => movingAverage(r.loss.filter(([, y]) => Number.isFinite(y)), Math.max(1, Math.round(r.loss.length / 40))));
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="14">${esc(title)}</text>`,
    panel(smoothed, 10, 24, "epoch", "training loss (smoothed)", false),
    panel(runs.map((r) => r.acc), 10 + PANEL_W + 10, 24, "epoch", "test accuracy", true),
  ];
  runs.forEach((r, i) => {
    const x = 20 + (i % 3) * 300, y = PANEL_H + 44 + Math.floor(i / 3) * 18;
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2.5"/>`,
      `<text x="${x + 28}" y="${y}">${esc(r.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

function panel(series: [number, number][][], x0: number, y0: number, xLabel: string, yLabel: string, dots: boolean): string {
  const pts = series.flat().filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const out = [`<g transform="translate(${x0},${y0})">`];
  if (!pts.length) return out.concat([`<text x="${PANEL_W / 2}" y="${PANEL_H / 2}" text-anchor="middle" fill="#888">no data</text></g>`]).join("\n");
  let [xmin, xmax] = extent(pts.map((p) => p[0]));
  let [ymin, ymax] = extent(pts.map((p) => p[1]));
  if (xmax === xmin) { xmin -= 1; xmax += 1; }
  if (ymax === ymin) { ymin -= 0.5; ymax += 0.5; }
  ymin -= 0.03 * (ymax - ymin); ymax += 0.03 * (ymax - ymin);
  const pw = PANEL_W - PAD.left - PAD.right, ph = PANEL_H - PAD.top - PAD.bottom;
  const sx = (x: number): number => PAD.left + ((x - xmin) / (xmax - xmin)) * pw;
  const sy = (y: number): number => PAD.top + ph - ((y - ymin) / (ymax - ymin)) * ph;
  out.push(`<rect x="${PAD.left}" y="${PAD.top}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
  for (const t of ticks(ymin, ymax, 5)) {
    out.push(`<line x1="${PAD.left}" y1="${f(sy(t))}" x2="${PAD.left + pw}" y2="${f(sy(t))}" stroke="#eee"/>`,
      `<text x="${PAD.left - 4}" y="${f(sy(t) + 4)}" text-anchor="end">${Number(t.toPrecision(4))}</text>`);
  }
  for (const t of ticks(xmin, xmax, 6)) {
    out.push(`<text x="${f(sx(t))}" y="${PAD.top + ph + 14}" text-anchor="middle">${Number(t.toPrecision(4))}</text>`);
  }
  out.push(`<text x="${PAD.left + pw / 2}" y="${PANEL_H - 6}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text x="12" y="${PAD.top + ph / 2}" text-anchor="middle" transform="rotate(-90 12 ${PAD.top + ph / 2})">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length];
    const ok = s.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (ok.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.6" points="${ok.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ")}"/>`);
    if (dots) for (const [x, y] of ok) out.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="2.5" fill="${c}"/>`);
  });
  out.push("</g>");
  return out.join("\n");
}

function extent(v: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const x of v) { if (x < lo) lo = x; if (x > hi) hi = x; }
  return [lo, hi];
}

function f(x: number): string { return x.toFixed(1); }

function esc(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c] as string);
}
