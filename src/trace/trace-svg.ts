// The measured timeline of one traced step drawn below the simulated one for the same costs: the
// simulator runs the trace's schedule with per-stage costs taken as the medians of the
// measured F, B, W and STEP durations (and the median message time), so the two pictures differ only
// where the run differs from the model (waits, slow messages, uneven actions). Both are drawn by
// report/timeline-svg.ts on one time scale (ms).
import { timelineSvg } from "../report/timeline-svg.js";
import { virtualStage, type Schedule } from "../pipeline/schedule/index.js";
import { simulate, type CostModel, type SimResult } from "../sim/index.js";
import { median } from "../util/stats.js";
import type { TraceFile } from "./chrome-trace.js";
import { eventsByStep, measuredTimeline, scheduleOf } from "./report.js";

/** Per virtual stage medians of the trace's F, B, W durations, per stage of STEP, and the median message time (ms). */
export function measuredCosts(t: TraceFile, s: Schedule, segment: number): CostModel {
  const V = s.stages * s.chunks;
  const by = { F: [] as number[][], B: [] as number[][], W: [] as number[][], STEP: [] as number[][] };
  for (const k of Object.values(by)) for (let v = 0; v < V; v++) k.push([]);
  const sends = new Map<string, number>(), messages: number[] = [];
  const steps = new Set(t.metadata.steps.filter((x) => x.segment === segment).map((x) => x.step));
  for (const e of t.traceEvents) {
    if (e.ph !== "X" || !steps.has(Number(e.args?.step))) continue;
    const ms = (e.dur ?? 0) / 1000;
    if (e.name in by && e.args?.stage !== undefined) {
      const v = e.name === "STEP" ? Number(e.args.stage) : virtualStage(Number(e.args.stage), Number(e.args.chunk), s.stages);
      by[e.name as keyof typeof by][v].push(ms);
    }
    if (e.name === "send") sends.set(`${String(e.args?.step)}/${String(e.args?.key)}`, e.ts);
  }
  for (const e of t.traceEvents) {
    if (e.ph !== "X" || e.name !== "receive" || !steps.has(Number(e.args?.step))) continue;
    const from = sends.get(`${String(e.args?.step)}/${String(e.args?.key)}`);
    if (from !== undefined) messages.push(Math.max(0, (e.ts + (e.dur ?? 0) - from) / 1000));
  }
  const med = (xs: number[]): number => (xs.length ? median(xs) : 0);
  const f = by.F.map(med), b = by.B.map(med), w = by.W.map(med);
  return {
    forward: f,
    // The cost model's backward is the whole backward (B + W when split); W its weight share.
    backward: b.map((x, v) => (s.splitBackward ? x + w[v] : x)),
    weight: s.splitBackward ? w : w.map(() => 0),
    step: by.STEP.slice(0, s.stages).map(med),
    message: messages.length ? median(messages) : 0,
  };
}

/** The simulated step (medians of the measured costs) above the measured step `step`, as one SVG. */
export function traceTimelineSvg(t: TraceFile, step: number): string {
  const info = t.metadata.steps.find((x) => x.step === step);
  if (!info) throw new Error(`the trace has no step ${step}`);
  if (!eventsByStep(t).has(step)) throw new Error(`step ${step} of the trace holds no action`);
  const s = scheduleOf(t.metadata.segments[info.segment].schedule);
  const sim = simulate(s, measuredCosts(t, s, info.segment));
  const m = measuredTimeline(t, step, s.workers.length);
  const total = m.busy.reduce((a, b) => a + b, 0);
  const measured: SimResult = { schedule: s, costs: sim.costs, timeline: m.timeline, makespan: m.makespan, busy: m.busy, idle: m.busy.map((x) => m.makespan - x),
    bubbleFraction: m.makespan > 0 ? 1 - total / (s.workers.length * m.makespan) : 0, speedup: m.makespan > 0 ? total / m.makespan : 0,
    peakActivations: sim.peakActivations };
  const scale = 1100 / Math.max(sim.makespan, m.makespan, 1e-9);
  const label = `${s.name}: S=${s.stages}, M=${s.microbatches}${s.chunks > 1 ? `, v=${s.chunks}` : ""}`;
  const top = timelineSvg(sim, { scale, title: `simulated, ${label} (costs: medians of the measured actions)` }).replace("time (cost units)", "time (ms)");
  const bottom = timelineSvg(measured, { scale, title: `measured, ${label}, step ${step}` }).replace("time (cost units)", "time (ms)");
  return stack([top, bottom]);
}

/** SVG documents one below the other in one document. */
function stack(svgs: string[]): string {
  const size = (x: string): [number, number] => {
    const m = /width="([\d.]+)" height="([\d.]+)"/.exec(x);
    return m ? [Number(m[1]), Number(m[2])] : [0, 0];
  };
  const sizes = svgs.map(size);
  const width = Math.max(...sizes.map(([w]) => w)), height = sizes.reduce((h, [, y]) => h + y, 0);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`];
  let y = 0;
  svgs.forEach((x, i) => {
    out.push(x.replace(/^<svg /, `<svg x="0" y="${y}" `));
    y += sizes[i][1];
  });
  out.push("</svg>");
  return out.join("\n");
}
