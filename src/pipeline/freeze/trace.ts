// Freeze trace: what a PipeTransformer run did and measured per epoch, as JSON, so `pipewright sim`
// can replay the same freeze progression on a machine with more workers and predict the speed-up.
//
// Prediction model (cost scaling, compute only, no communication or all-reduce cost):
// - Unit time cost per sample: active unit = params, frozen unit = params * frozenCostRatio, frozen
//   unit in an epoch served from the activation cache = 0.
// - Calibration: seconds per cost unit k_e = sum of the epoch's measured stage busy seconds (all
//   stages, all replicas) / (samples * total unit cost of that epoch); without measurements k_e = 1.
//   The baseline uses k of the trace's epochs with nothing frozen (their mean).
// - An epoch on W workers with S stages, R = floor(W/S) replicas, M micro-batches and per-stage
//   costs c_s (per sample, over AutoPipe's partition for that epoch) takes
//     k_e * (samples / R) / M * (sum_s c_s + (M - 1) * max_s c_s)
//   i.e. each replica handles samples/R examples in steps of M micro-batches, and a GPipe/1F1B step
//   with unequal stages takes one pass through all stages plus M-1 repetitions of the slowest one
//   (for equal stages: (M + S - 1) * c, the usual bubble).
// - Baseline: no freezing, the starting pipeline (S_0 stages, floor(W/S_0) replicas) every epoch.
//   PipeTransformer: AutoPipe replayed on W workers from S_0 with the trace's frozen counts (the
//   trace's own stages/replicas are not used; if W exceeds the trace's batch, the batch is raised to
//   W so every replica has an example).
// - Speed-up = total baseline time / total PipeTransformer time; since samples cancel, so does the
//   absolute scale unless k_e differs between epochs.
import { AutoPipe, checkUnits, type PipeUnit, type Transition, unitCosts } from "./autopipe.js";

const TRACE_FORMAT = "pipewright-freeze-trace";
const TRACE_VERSION = 1;

/** An epoch's layout: what was frozen and how the rest was pipelined and replicated. */
export interface EpochLayout {
  /** 1-based epoch number. */
  epoch: number;
  /** Frozen layers during this epoch. */
  frozen: number;
  stages: number;
  replicas: number;
  microbatches: number;
}

export interface TraceEpoch extends EpochLayout {
  /** Whether the frozen prefix's outputs came from the activation cache during this epoch. */
  cached: boolean;
  /** Measured busy (compute) seconds per stage in this epoch, summed over replicas. */
  stageSeconds?: number[];
  /** Measured wall-clock seconds of the epoch. */
  wallSeconds?: number;
}

export interface FreezeTrace {
  format: typeof TRACE_FORMAT;
  version: typeof TRACE_VERSION;
  model: string;
  /** Workers of the run that produced the trace. */
  workers: number;
  /** Training samples per epoch. */
  samples: number;
  /** Mini-batch size per step (all replicas). */
  batch: number;
  frozenCostRatio: number;
  microbatchesPerStage: number;
  units: PipeUnit[];
  epochs: TraceEpoch[];
}

export function createTrace(meta: Omit<FreezeTrace, "format" | "version" | "epochs">): FreezeTrace {
  const t: FreezeTrace = { format: TRACE_FORMAT, version: TRACE_VERSION, ...meta, units: meta.units.map((u) => ({ ...u })), epochs: [] };
  validateTrace(t);
  return t;
}

export function addEpoch(trace: FreezeTrace, e: TraceEpoch): void {
  trace.epochs.push(e);
  try { validateTrace(trace); } catch (err) { trace.epochs.pop(); throw err; }
}

/** The trace record of an epoch run with layout `t` (the runtime adds what it measured). */
export function epochRecord(epoch: number, t: Transition, cached: boolean, measured: { stageSeconds?: number[]; wallSeconds?: number } = {}): TraceEpoch {
  return { epoch, frozen: t.frozenLayers, stages: t.stages, replicas: t.replicas, microbatches: t.microbatches, cached, ...measured };
}

const isPosInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1;

/** Checks a parsed trace; errors name the field and what is allowed. */
function validateTrace(t: unknown): asserts t is FreezeTrace {
  const fail = (msg: string): never => { throw new Error(`freeze trace: ${msg}`); };
  if (typeof t !== "object" || t === null) fail(`expected a JSON object, got ${JSON.stringify(t)}`);
  const o = t as Record<string, unknown>;
  if (o.format !== TRACE_FORMAT) fail(`format is ${JSON.stringify(o.format)}, expected "${TRACE_FORMAT}"`);
  if (o.version !== TRACE_VERSION) fail(`version ${JSON.stringify(o.version)} is not supported (this build reads version ${TRACE_VERSION})`);
  if (typeof o.model !== "string") fail("model must be a string");
  for (const k of ["workers", "samples", "batch", "microbatchesPerStage"]) if (!isPosInt(o[k])) fail(`${k} must be a positive integer, got ${JSON.stringify(o[k])}`);
  const r = o.frozenCostRatio;
  if (typeof r !== "number" || !(r >= 0 && r <= 1)) fail(`frozenCostRatio must be a number in [0, 1], got ${JSON.stringify(r)}`);
  if (!Array.isArray(o.units)) fail("units must be a list of {name, params, layer}");
  const units = o.units as PipeUnit[];
  units.forEach((u, i) => { if (typeof u?.name !== "string") fail(`units[${i}].name must be a string`); });
  let L = 0;
  try { L = checkUnits(units); } catch (err) { fail((err as Error).message); }
  if (!Array.isArray(o.epochs)) fail("epochs must be a list");
  let prevFrozen = 0;
  (o.epochs as TraceEpoch[]).forEach((e, i) => {
    const at = `epochs[${i}]`;
    if (typeof e !== "object" || e === null) fail(`${at} must be an object`);
    if (e.epoch !== i + 1) fail(`${at}.epoch is ${JSON.stringify(e.epoch)}, expected ${i + 1} (epochs in order from 1)`);
    if (!Number.isInteger(e.frozen) || e.frozen < prevFrozen || e.frozen >= L) {
      fail(`${at}.frozen is ${JSON.stringify(e.frozen)}; it must be an integer in [${prevFrozen}, ${L - 1}] (never unfreezes, keeps the last layer)`);
    }
    prevFrozen = e.frozen;
    for (const k of ["stages", "replicas", "microbatches"] as const) if (!isPosInt(e[k])) fail(`${at}.${k} must be a positive integer, got ${JSON.stringify(e[k])}`);
    if (typeof e.cached !== "boolean") fail(`${at}.cached must be true or false`);
    if (e.stageSeconds !== undefined) {
      if (!Array.isArray(e.stageSeconds) || e.stageSeconds.length !== e.stages || e.stageSeconds.some((x) => typeof x !== "number" || !(x >= 0) || !Number.isFinite(x))) {
        fail(`${at}.stageSeconds must list ${e.stages} finite numbers >= 0 (one per stage)`);
      }
    }
    if (e.wallSeconds !== undefined && (typeof e.wallSeconds !== "number" || !(e.wallSeconds >= 0))) fail(`${at}.wallSeconds must be a number >= 0`);
  });
}

/** Parses trace JSON text (e.g. a file's contents). */
export function parseTrace(text: string, source = "trace"): FreezeTrace {
  let v: unknown;
  try { v = JSON.parse(text); } catch (err) { throw new Error(`freeze trace ${source}: not valid JSON (${(err as Error).message})`); }
  validateTrace(v);
  return v;
}

export interface PredictedEpoch extends EpochLayout {
  /** Predicted seconds with PipeTransformer and with the baseline. */
  seconds: number;
  baselineSeconds: number;
}

export interface SpeedupPrediction {
  workers: number;
  /** Starting pipeline length on the target machine. */
  stages: number;
  baselineSeconds: number;
  seconds: number;
  speedup: number;
  epochs: PredictedEpoch[];
}

/** Time-model cost per sample of each unit (cached frozen units cost nothing). */
function timeCosts(trace: FreezeTrace, frozen: number, cached: boolean): number[] {
  const c = unitCosts(trace.units, frozen, trace.frozenCostRatio);
  return cached ? c.map((x, i) => (trace.units[i].layer < frozen ? 0 : x)) : c;
}

/** (sum c_s + (M-1) max c_s) / M: per-sample time of one pipeline, in cost units. */
function pipelineCostPerSample(costs: readonly number[], ranges: readonly [number, number][], M: number): number {
  const stage = ranges.map(([a, b]) => costs.slice(a, b).reduce((x, y) => x + y, 0));
  return (stage.reduce((x, y) => x + y, 0) + (M - 1) * Math.max(...stage)) / M;
}

/** Largest power of two <= n. */
const pow2Floor = (n: number): number => 2 ** Math.floor(Math.log2(n));

/**
 * Predicted speed-up of PipeTransformer over the no-freeze baseline on `workers` workers, replaying
 * the trace's frozen counts (model in the header). `stages` = starting pipeline length (default: the
 * largest power of two <= min(workers, units)).
 */
export function predictSpeedup(trace: FreezeTrace, workers: number, options: { stages?: number } = {}): SpeedupPrediction {
  validateTrace(trace);
  if (trace.epochs.length === 0) throw new Error("freeze trace has no epochs to replay");
  if (!isPosInt(workers)) throw new Error(`workers must be a positive integer, got ${workers}`);
  const S0 = options.stages ?? pow2Floor(Math.min(workers, trace.units.length));
  const batch = Math.max(trace.batch, workers); // every replica needs examples
  const pipe = new AutoPipe(trace.units, {
    workers, stages: S0, batch, frozenCostRatio: trace.frozenCostRatio, microbatchesPerStage: trace.microbatchesPerStage,
  });
  const measured = trace.epochs.every((e) => e.stageSeconds !== undefined);
  const k = trace.epochs.map((e) => {
    if (!measured) return 1;
    const work = trace.samples * timeCosts(trace, e.frozen, e.cached).reduce((a, b) => a + b, 0);
    const secs = (e.stageSeconds as number[]).reduce((a, b) => a + b, 0);
    return work > 0 ? secs / work : 0;
  });
  const k0s = k.filter((_, i) => trace.epochs[i].frozen === 0);
  const kBase = k0s.length ? k0s.reduce((a, b) => a + b, 0) / k0s.length : k[0];
  const start = pipe.initial();
  const baseCost = pipelineCostPerSample(timeCosts(trace, 0, false), start.partition.ranges, start.microbatches);
  const baseEpoch = kBase * (trace.samples / start.replicas) * baseCost;
  const epochs = trace.epochs.map((e, i): PredictedEpoch => {
    const t = e.frozen > pipe.state.frozenLayers ? pipe.onFreeze(e.epoch - 1, e.frozen) : pipe.state;
    const cost = pipelineCostPerSample(timeCosts(trace, e.frozen, e.cached), t.partition.ranges, t.microbatches);
    return {
      epoch: e.epoch, frozen: e.frozen, stages: t.stages, replicas: t.replicas, microbatches: t.microbatches,
      seconds: k[i] * (trace.samples / t.replicas) * cost, baselineSeconds: baseEpoch,
    };
  });
  const seconds = epochs.reduce((a, e) => a + e.seconds, 0);
  const baselineSeconds = baseEpoch * epochs.length;
  return { workers, stages: S0, baselineSeconds, seconds, speedup: seconds > 0 ? baselineSeconds / seconds : Infinity, epochs };
}

/** Human-readable table of a prediction. */
export function formatPrediction(p: SpeedupPrediction): string {
  const lines = [`predicted on ${p.workers} workers (pipeline starts at ${p.stages} stages):`,
    "epoch  frozen  stages  replicas  M    baseline s  pipetransformer s"];
  for (const e of p.epochs) {
    lines.push(`${String(e.epoch).padStart(5)}  ${String(e.frozen).padStart(6)}  ${String(e.stages).padStart(6)}  ${String(e.replicas).padStart(8)}  ` +
      `${String(e.microbatches).padEnd(3)}  ${e.baselineSeconds.toPrecision(4).padStart(10)}  ${e.seconds.toPrecision(4).padStart(17)}`);
  }
  lines.push(`total: baseline ${p.baselineSeconds.toPrecision(4)} s, PipeTransformer ${p.seconds.toPrecision(4)} s, speed-up ${p.speedup.toFixed(2)}x`);
  return lines.join("\n");
}
