// Loss and accuracy curves as a standalone SVG, drawn from the JSON-lines metrics a training run
// writes: left panel the training loss per logged step with the test loss per epoch, right panel the
// test accuracy per epoch (or perplexity for language models). No dependencies: plain SVG text.
import { escapeXml, f, finite, movingAverage, panelFrame } from "./svg.js";

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
  const { sx, sy, parts, empty } = panelFrame(series.flatMap((s) => s.points), { width: PANEL_W, height: H - 20, pad: PAD }, xLabel, yLabel, integerX);
  const out: string[] = [`<g transform="translate(${x0},20)">`, ...parts];
  if (empty) return out.concat("</g>").join("\n");
  series.forEach((s, i) => {
    const pts = finite(s.points);
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
