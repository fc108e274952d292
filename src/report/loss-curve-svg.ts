// Loss and accuracy curves as a standalone SVG, drawn from the JSON-lines metrics a training run
// writes: left panel the training loss per logged step with the test loss per epoch, right panel the
// test accuracy per epoch (or perplexity for language models). No dependencies: plain SVG text.

/** The fields of a training run's metrics record (train/metrics.ts extends it) this chart reads. */
export interface CurvePoint {
  type: "step" | "epoch";
  /** 1-based epoch the record belongs to. */
  epoch: number;
  /** Optimizer steps done so far (global, counting from the start of the first run). */
  step: number;
  /** Step: that step's loss. Epoch: mean training loss over the epoch. */
  loss: number | null;
  test_loss: number | null;
  /** Test accuracy in [0, 1]; null for language models and step records. */
  test_acc: number | null;
  /** Language models: exp(test_loss). */
  test_ppl?: number | null;
}

interface Series { name: string; colour: string; points: [number, number][]; dots?: boolean }

const W = 900;
const H = 360;
const PANEL_W = 420;
const PAD = { left: 56, right: 12, top: 34, bottom: 44 };

export function lossCurveSvg(records: readonly CurvePoint[], title = "pipewright training"): string {
  const steps = records.filter((r) => r.type === "step" && r.loss !== null);
  const epochs = records.filter((r) => r.type === "epoch");
  const raw: [number, number][] = steps.map((r) => [r.step, r.loss as number]);
  const lossSeries: Series[] = [
    { name: "train loss", colour: "#a6c4e0", points: raw },
    // Per-step losses are noisy; a centred moving average shows the trend.
    { name: "train loss (smoothed)", colour: "#1f4e79", points: movingAverage(raw, Math.max(1, Math.round(raw.length / 50))) },
    { name: "test loss", colour: "#e45756", dots: true,
      points: epochs.filter((r) => r.test_loss !== null).map((r) => [r.step, r.test_loss as number]) },
  ];
  const hasAcc = epochs.some((r) => r.test_acc !== null);
  const right: Series[] = hasAcc
    ? [{ name: "test accuracy", colour: "#54a24b", dots: true,
      points: epochs.filter((r) => r.test_acc !== null).map((r) => [r.epoch, r.test_acc as number]) }]
    : [{ name: "test perplexity", colour: "#b279a2", dots: true,
      points: epochs.filter((r) => r.test_ppl != null).map((r) => [r.epoch, r.test_ppl as number]) }];
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
    panel(lossSeries, 10, "step", "loss", true),
    panel(right, 10 + PANEL_W + 40, "epoch", hasAcc ? "accuracy" : "perplexity", true),
    "</svg>",
  ];
  return parts.join("\n") + "\n";
}

function panel(series: Series[], x0: number, xLabel: string, yLabel: string, integerX = false): string {
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const out: string[] = [`<g transform="translate(${x0},20)">`];
  const pw = PANEL_W - PAD.left - PAD.right;
  const ph = H - 20 - PAD.top - PAD.bottom;
  if (all.length === 0) {
    out.push(`<text x="${PANEL_W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no data</text></g>`);
    return out.join("\n");
  }
  let [xmin, xmax] = extent(all.map((p) => p[0]));
  let [ymin, ymax] = extent(all.map((p) => p[1]));
  if (xmax === xmin) { xmin -= 1; xmax += 1; }
  if (ymax === ymin) { ymin -= 0.5; ymax += 0.5; }
  const yr = ymax - ymin;
  ymin -= yr * 0.05; ymax += yr * 0.05;
  const sx = (x: number): number => PAD.left + ((x - xmin) / (xmax - xmin)) * pw;
  const sy = (y: number): number => PAD.top + (1 - (y - ymin) / (ymax - ymin)) * ph;
  out.push(`<rect x="${PAD.left}" y="${PAD.top}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>`);
  for (const t of ticks(ymin, ymax, 5)) {
    out.push(`<line x1="${PAD.left}" x2="${PAD.left + pw}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="#eee"/>`);
    out.push(`<text x="${PAD.left - 4}" y="${f(sy(t) + 4)}" text-anchor="end">${label(t)}</text>`);
  }
  for (const t of ticks(xmin, xmax, 6).filter((v) => !integerX || Number.isInteger(v))) {
    out.push(`<text x="${f(sx(t))}" y="${PAD.top + ph + 14}" text-anchor="middle">${label(t)}</text>`);
  }
  out.push(`<text x="${PAD.left + pw / 2}" y="${PAD.top + ph + 32}" text-anchor="middle">${xLabel}</text>`);
  out.push(`<text transform="translate(12,${PAD.top + ph / 2}) rotate(-90)" text-anchor="middle">${yLabel}</text>`);
  series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="1.5" points="${pts.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ")}"/>`);
    }
    if (s.dots || pts.length === 1) {
      for (const [x, y] of pts) out.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3" fill="${s.colour}"/>`);
    }
    // Legend in the band above the plot, so it never hides a curve.
    const lx = PAD.left + legendOffset(series, i);
    out.push(`<rect x="${lx}" y="${PAD.top - 18}" width="10" height="10" fill="${s.colour}"/>`);
    out.push(`<text x="${lx + 14}" y="${PAD.top - 9}">${escapeXml(s.name)}</text>`);
  });
  out.push("</g>");
  return out.join("\n");
}

function legendOffset(series: Series[], i: number): number {
  let x = 0;
  for (let j = 0; j < i; j++) x += 24 + series[j].name.length * 6;
  return x;
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

function extent(v: number[]): [number, number] {
  let lo = Infinity; let hi = -Infinity;
  for (const x of v) { if (x < lo) lo = x; if (x > hi) hi = x; }
  return [lo, hi];
}

/** "Nice" tick positions (1, 2, 5 times a power of ten) inside [lo, hi]. */
export function ticks(lo: number, hi: number, count: number): number[] {
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function label(t: number): string {
  if (t !== 0 && (Math.abs(t) >= 1e5 || Math.abs(t) < 1e-3)) return t.toExponential(1);
  return String(Number(t.toPrecision(4)));
}

function f(x: number): string { return x.toFixed(1); }

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c] as string);
}
