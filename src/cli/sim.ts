// `pipewright sim`: generate a schedule, validate and simulate it under a cost model, print bubble
// fraction, makespan, idle time, peak activations (and delays for async), optionally draw the SVG.
import { asUsage, command, type CommandSpec, type FlagValues, UsageError } from "./args.js";
import { emit } from "./output.js";
import {
  contiguousWorkers, expectedDelay, formatSchedule, generateSchedule, measureDelays, SCHEDULE_NAMES, type Schedule,
  WEIGHT_GRAD_MODES,
} from "../pipeline/schedule/index.js";
import { bubbleFormula, type CostModel, resolveCosts, simulate, type SimResult } from "../sim/index.js";
import { timelineSvg } from "../report/timeline-svg.js";
import { formatPrediction, parseTrace, predictSpeedup } from "../pipeline/freeze/index.js";
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import { round } from "../util/stats.js";

const simCommand = {
  name: "sim",
  summary: "Simulate a pipeline schedule: bubble fraction, makespan, idle time and peak activations per stage, " +
    "delays per stage for async, and an SVG timeline. Costs are per whole stage (interleaved chunks split them evenly); " +
    "a cost flag takes one value for every stage or one per stage (comma-separated).",
  flags: {
    schedule: { type: "string", help: `schedule: ${SCHEDULE_NAMES.join(" | ")}`, choices: SCHEDULE_NAMES, default: "1f1b", meta: "NAME" },
    stages: { type: "int", help: "pipeline stages S", min: 1, default: 4, meta: "S" },
    microbatches: { type: "int", help: "micro-batches per optimizer step M", min: 1, default: 8, meta: "M" },
    chunks: { type: "int", help: "model chunks per stage v (interleaved only)", min: 1, default: 1, meta: "v" },
    steps: { type: "int", help: "optimizer steps to lay out (default 1; async: enough to reach steady state)", min: 1, meta: "N" },
    workers: { type: "int", help: "workers to run the stages on (contiguous blocks; default one per stage)", min: 1, meta: "W" },
    "weight-grads": { type: "string", choices: WEIGHT_GRAD_MODES, default: "microbatch",
      help: "synchronous schedules: weight gradients with each backward, or once per step (every B input-gradient only, the step's W's before its STEP)" },
    "cost-f": { type: "list", help: "forward time of a stage", default: "1", meta: "T[,T...]" },
    "cost-b": { type: "list", help: "full backward time of a stage (input + weight gradient)", default: "2", meta: "T[,T...]" },
    "cost-w": { type: "list", help: "weight-gradient share of the backward (W in zb-h1)", default: "1", meta: "T[,T...]" },
    "cost-step": { type: "number", help: "time of one optimizer STEP", min: 0, default: 0, meta: "T" },
    "cost-msg": { type: "number", help: "latency of one message between workers", min: 0, default: 0, meta: "T" },
    cores: { type: "number", help: "cores the workers run on (default one per worker); with more workers in an action than cores they share them fairly", min: 1, meta: "C" },
    background: { type: "number", help: "other runnable tasks competing for the --cores (default 0)", min: 0, meta: "N" },
    svg: { type: "string", help: "write the timeline to this SVG file", meta: "FILE" },
    json: { type: "bool", help: "print one JSON object instead of text" },
    lists: { type: "bool", help: "also print each worker's action list" },
    "freeze-trace": { type: "string", help: "PipeTransformer: replay this freeze trace (from `repro pipetransformer` or `train --freeze --freeze-trace`) on --workers workers (default 8) and predict the speed-up", meta: "FILE" },
  },
  examples: [
    "pipewright sim --schedule 1f1b --stages 4 --microbatches 8 --svg 1f1b.svg",
    "pipewright sim --schedule interleaved --stages 4 --microbatches 8 --chunks 2",
    "pipewright sim --schedule zb-h1 --stages 4 --microbatches 8 --cost-f 1 --cost-b 2 --cost-w 1",
    "pipewright sim --schedule gpipe --stages 2 --microbatches 8 --weight-grads step --svg gpipe-step.svg",
    "pipewright sim --schedule async --stages 8 --microbatches 1 --steps 24 --workers 2 --json",
    "pipewright sim --freeze-trace pipetransformer-trace.json --workers 8",
  ],
} as const satisfies CommandSpec;

function costList(name: string, items: readonly string[], S: number): number | number[] {
  const nums = items.map((x) => {
    const n = Number(x);
    if (x === "" || !Number.isFinite(n) || n < 0) throw new UsageError(`--${name} '${items.join(",")}': '${x}' is not a number >= 0`);
    return n;
  });
  if (nums.length === 1) return nums[0];
  if (nums.length !== S) throw new UsageError(`--${name} has ${nums.length} values; give one for every stage or exactly ${S} (one per stage)`);
  return nums;
}

function build(f: FlagValues<typeof simCommand.flags>): { schedule: Schedule; costs: CostModel } {
  const { stages: S, workers } = f;
  if (workers !== undefined && workers > S) throw new UsageError(`--workers ${workers} exceeds --stages ${S}; use 1..${S}`);
  const schedule = asUsage(() => generateSchedule(f.schedule, {
    stages: S, microbatches: f.microbatches, chunks: f.chunks, steps: f.steps,
    stageToWorker: workers !== undefined && workers < S ? contiguousWorkers(S, workers) : undefined, weightGrads: f["weight-grads"],
  }), "pipewright sim: ");
  const costs: CostModel = {
    forward: costList("cost-f", f["cost-f"], S),
    backward: costList("cost-b", f["cost-b"], S),
    weight: costList("cost-w", f["cost-w"], S),
    step: f["cost-step"],
    message: f["cost-msg"],
    cores: f.cores,
    background: f.background,
  };
  asUsage(() => resolveCosts(costs, S), "pipewright sim: ");
  return { schedule, costs };
}

export const runSim = command(simCommand, (f) => {
  if (f["freeze-trace"] !== undefined) {
    const file = f["freeze-trace"];
    let text: string;
    try { text = readFileSync(file, "utf8"); } catch (e) { throw new UsageError(`--freeze-trace ${file}: cannot read it (${(e as Error).message})`); }
    const p = predictSpeedup(parseTrace(text, file), f.workers ?? 8);
    emit(f.json, p, formatPrediction(p));
    return 0;
  }
  const { schedule: s, costs } = build(f);
  const r = simulate(s, costs);
  // The formulas are for the generators' own lists (weight gradients with each backward).
  const formula = f["weight-grads"] === "step" ? null : bubbleFormula(s.name, s.stages, s.microbatches, s.chunks, resolveCosts(costs, s.stages));
  const isAsync = !s.synchronous;
  const delays = isAsync ? measureDelays(s).perStage : undefined;
  const expected = isAsync ? Array.from({ length: s.stages }, (_, st) => expectedDelay(s.stages, st, s.microbatches)) : undefined;
  const svgPath = f.svg;
  if (svgPath) writeFileAtomic(svgPath, timelineSvg(r));
  emit(f.json, {
    schedule: s.name, stages: s.stages, microbatches: s.microbatches, chunks: s.chunks, steps: s.steps,
    workers: s.workers.length, stage_to_worker: s.stageToWorker, weight_grads: f["weight-grads"],
    makespan: round(r.makespan, 12), bubble_fraction: round(r.bubbleFraction, 12),
    bubble_formula: formula ? { expr: formula.expr, value: round(formula.value, 12) } : null,
    speedup: round(r.speedup, 12), busy_per_worker: r.busy.map((x) => round(x, 12)), idle_per_worker: r.idle.map((x) => round(x, 12)),
    peak_activations: r.peakActivations,
    ...(isAsync ? { delays, expected_delays: expected } : {}),
    svg: svgPath ?? null,
  }, formatSim(s, r, formula, f, delays && expected ? [delays, expected] : null));
  return 0;
});

function formatSim(s: Schedule, r: SimResult, formula: { expr: string; value: number } | null, f: FlagValues<typeof simCommand.flags>,
  delays: [number[], number[]] | null): string {
  const fmt = (x: number): string => String(round(x, 6));
  const lines = [
    `schedule ${s.name}: S=${s.stages} stages on ${s.workers.length} workers, M=${s.microbatches} micro-batches` +
      `${s.chunks > 1 ? `, v=${s.chunks} chunks` : ""}, ${s.steps} step${s.steps > 1 ? "s" : ""}` +
      `${f["weight-grads"] === "step" ? ", weight gradients once per step" : ""}`,
    `makespan           ${fmt(r.makespan)}`,
    `bubble fraction    ${r.bubbleFraction.toFixed(4)}${formula ? `   (formula ${formula.expr} = ${formula.value.toFixed(4)})` : ""}`,
    `speed-up bound     ${r.speedup.toFixed(3)} (total work / makespan)`,
    `idle per worker    ${r.idle.map(fmt).join(" ")}`,
    `peak activations   ${r.peakActivations.join(" ")}   (per stage, micro-batches${s.chunks > 1 ? " x chunks" : ""})`,
  ];
  if (delays) {
    lines.push(`delays per stage   ${delays[0].join(" ")}   (STEPs between F and B, max over micro-batches)`);
    lines.push(`expected delays    ${delays[1].join(" ")}   (ceil((2(S-1-s)+1)/M))`);
  }
  if (f.lists) lines.push("", formatSchedule(s));
  if (f.svg) lines.push(`wrote ${f.svg}`);
  return lines.join("\n");
}
