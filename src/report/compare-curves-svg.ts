// Several runs' curves in one standalone SVG (the reproductions compare methods): left panel the
// smoothed training loss against epochs (fractional, so runs with different batch sizes line up),
// right panel the test accuracy per epoch. One colour per run, legend below the panels.
import { escapeXml, f, finite, movingAverage, panelFrame } from "./svg.js";

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
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
    panel(smoothed, 10, 24, "epoch", "training loss (smoothed)", false),
    panel(runs.map((r) => r.acc), 10 + PANEL_W + 10, 24, "epoch", "test accuracy", true),
  ];
  runs.forEach((r, i) => {
    const x = 20 + (i % 3) * 300, y = PANEL_H + 44 + Math.floor(i / 3) * 18;
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2.5"/>`,
      `<text x="${x + 28}" y="${y}">${escapeXml(r.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

function panel(series: [number, number][][], x0: number, y0: number, xLabel: string, yLabel: string, dots: boolean): string {
  const { sx, sy, parts, empty } = panelFrame(series.flat(), { width: PANEL_W, height: PANEL_H, pad: PAD }, xLabel, yLabel, false);
  const out = [`<g transform="translate(${x0},${y0})">`, ...parts];
  if (!empty) {
    series.forEach((s, i) => {
      const c = COLOURS[i % COLOURS.length];
      const ok = finite(s);
      if (ok.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.6" points="${ok.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ")}"/>`);
      if (dots) for (const [x, y] of ok) out.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="2.5" fill="${c}"/>`);
    });
  }
  out.push("</g>");
  return out.join("\n");
}
