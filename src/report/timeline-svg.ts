// A schedule's simulated timeline as a self-contained SVG: one row per worker, one box per action
// coloured by kind (lighter shades for later chunks), labelled by micro-batch; STEPs are red marks.
// Every box carries a <title> with the action's compact form and its times, for hover in browsers.
import { type Action, formatAction } from "../pipeline/schedule/index.js";
import type { SimResult } from "../sim/index.js";
import { escapeXml } from "./svg.js";

const COLOURS: Record<Action["kind"], string> = { F: "#4c78a8", B: "#54a24b", W: "#f58518", REDUCE: "#b279a2", STEP: "#e45756", FB: "#72b7b2" };
const ROW_H = 26;
const ROW_GAP = 6;
const TOP = 52;
const CHAR_W = 6.6;

export interface TimelineOptions {
  title?: string;
  /** Pixels per time unit; default fits the makespan into about 1100 pixels (clamped to 4..40). */
  scale?: number;
}

/** Mixes a #rrggbb colour with white: t = 0 keeps it, t = 1 is white. */
function lighten(hex: string, t: number): string {
  const n = parseInt(hex.slice(1), 16);
  const mix = (c: number): number => Math.round(c + (255 - c) * t);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255].map(mix);
  return `#${((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1)}`;
}

function niceStep(span: number, maxTicks: number): number {
  const raw = span / maxTicks;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(4).replace(/\.?0+$/, ""));

export function timelineSvg(r: SimResult, opts: TimelineOptions = {}): string {
  const s = r.schedule;
  const W = r.timeline.length;
  const span = r.makespan > 0 ? r.makespan : 1;
  const stagesOn = Array.from({ length: W }, (_, w) => s.stageToWorker.flatMap((x, st) => (x === w ? [st] : [])));
  const rowName = (w: number): string => {
    const st = stagesOn[w];
    return st.length === 1 ? `worker ${w} · stage ${st[0]}` : `worker ${w} · stages ${st[0]}-${st[st.length - 1]}`;
  };
  const LABEL_W = Math.max(110, ...Array.from({ length: W }, (_, w) => Math.ceil(rowName(w).length * CHAR_W) + 20));
  const unit = opts.scale ?? Math.max(4, Math.min(40, 1100 / span));
  const plotW = span * unit;
  const legendItems: [string, string][] = [
    [COLOURS.F, "F forward"],
    [COLOURS.B, s.splitBackward ? "B input gradient" : "B backward"],
    ...(s.splitBackward ? [[COLOURS.W, "W weight gradient"] as [string, string]] : []),
    ...(s.workers.some((l) => l.some((a) => a.kind === "FB")) ? [[COLOURS.FB, "F&B pair (label: its F)"] as [string, string]] : []),
    [COLOURS.STEP, "STEP optimizer update"],
  ];
  const legendW = legendItems.reduce((x, [, t]) => x + 30 + t.length * CHAR_W, 12);
  const width = Math.max(480, Math.ceil(LABEL_W + plotW + 24), Math.ceil(legendW + 12));
  const rowsH = W * (ROW_H + ROW_GAP);
  const axisY = TOP + rowsH + 2;
  const legendY = axisY + 52;
  const height = legendY + 30;
  const x0 = LABEL_W;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  const title = opts.title ?? `${s.name}: S=${s.stages}, M=${s.microbatches}${s.chunks > 1 ? `, v=${s.chunks}` : ""}${s.steps > 1 ? `, ${s.steps} steps` : ""}`;
  out.push(`<text x="12" y="20" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  const peak = r.peakActivations.join(" ");
  out.push(`<text x="12" y="38" fill="#444">makespan ${fmt(r.makespan)} · bubble ${(100 * r.bubbleFraction).toFixed(1)}% · peak activations per stage ${escapeXml(peak)}</text>`);

  for (let w = 0; w < W; w++) {
    const y = TOP + w * (ROW_H + ROW_GAP);
    const st = stagesOn[w];
    out.push(`<text x="8" y="${y + ROW_H / 2 + 4}">${escapeXml(rowName(w))}</text>`);
    out.push(`<rect x="${x0}" y="${y}" width="${plotW.toFixed(1)}" height="${ROW_H}" fill="#f1f1f1"/>`);
    const shared = st.length > 1;
    for (const t of r.timeline[w]) {
      const a = t.action;
      const x = x0 + t.start * unit;
      const bw = (t.end - t.start) * unit;
      const tip = `<title>${formatAction(a)}: ${fmt(t.start)}–${fmt(t.end)}</title>`;
      if (a.kind === "STEP" && bw < 2) {
        out.push(`<g><line x1="${x.toFixed(1)}" y1="${y - 2}" x2="${x.toFixed(1)}" y2="${y + ROW_H + 2}" stroke="${COLOURS.STEP}" stroke-width="2"/>${tip}</g>`);
        continue;
      }
      const fill = s.chunks > 1 ? lighten(COLOURS[a.kind], (0.45 * a.chunk) / (s.chunks - 1)) : COLOURS[a.kind];
      const parts = [`<rect x="${x.toFixed(1)}" y="${y}" width="${Math.max(0.5, bw - 1).toFixed(1)}" height="${ROW_H}" fill="${fill}"/>`];
      const full = a.kind === "STEP" ? "step" : shared ? `${a.stage}:${a.microbatch}` : String(a.microbatch);
      const label = full.length * CHAR_W + 3 <= bw ? full : String(a.microbatch).length * CHAR_W + 3 <= bw ? String(a.microbatch) : "";
      if (label) {
        const dark = s.chunks > 1 && a.chunk > 0 && (0.45 * a.chunk) / (s.chunks - 1) > 0.3;
        parts.push(`<text x="${(x + bw / 2 - 0.5).toFixed(1)}" y="${y + ROW_H / 2 + 4}" text-anchor="middle" fill="${dark ? "#222" : "white"}">${label}</text>`);
      }
      out.push(`<g>${parts.join("")}${tip}</g>`);
    }
  }

  // Time axis.
  out.push(`<line x1="${x0}" y1="${axisY}" x2="${(x0 + plotW).toFixed(1)}" y2="${axisY}" stroke="#333"/>`);
  const step = niceStep(span, Math.max(2, Math.floor(plotW / 60)));
  for (let t = 0; t <= span + 1e-9; t += step) {
    const x = (x0 + t * unit).toFixed(1);
    out.push(`<line x1="${x}" y1="${axisY}" x2="${x}" y2="${axisY + 4}" stroke="#333"/>`);
    out.push(`<text x="${x}" y="${axisY + 16}" text-anchor="middle" fill="#333">${fmt(Number(t.toPrecision(10)))}</text>`);
  }
  out.push(`<text x="${(x0 + plotW).toFixed(1)}" y="${axisY + 30}" text-anchor="end" fill="#666">time (cost units)</text>`);

  // Legend.
  let lx = 12;
  for (const [c, text] of legendItems) {
    out.push(`<rect x="${lx}" y="${legendY - 10}" width="12" height="12" fill="${c}"/>`);
    out.push(`<text x="${lx + 17}" y="${legendY}">${escapeXml(text)}</text>`);
    lx += 30 + text.length * CHAR_W;
  }
  const notes = ["box label = micro-batch" + (stagesOn.some((x) => x.length > 1) ? " (stage:micro-batch on shared workers)" : "")];
  if (s.chunks > 1) notes.push("lighter = later chunk");
  out.push(`<text x="12" y="${legendY + 20}" fill="#666">${escapeXml(notes.join("; "))}</text>`);
  out.push("</svg>");
  return out.join("\n");
}
