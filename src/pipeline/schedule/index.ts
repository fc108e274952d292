// The schedule registry: one name per generator, and the checks that say which combinations exist.
import type { Schedule } from "./action.js";
import { asyncOneFOneB } from "./async.js";
import { colocate, contiguousWorkers } from "./colocate.js";
import { dualPipeV } from "./dualpipev.js";
import { stepsForSteadyState } from "./delays.js";
import { gpipe } from "./gpipe.js";
import { interleaved } from "./interleaved.js";
import { oneFOneB } from "./one-f-one-b.js";
import { resolveOptions, type ResolvedOptions, type ScheduleOptions } from "./options.js";
import { vPlacement } from "./v-shape.js";
import { zeroBubbleV } from "./zb-v.js";
import { zeroBubbleH1 } from "./zero-bubble.js";
import { isWeightGradMode, WEIGHT_GRAD_MODES, weightGradsAtStep } from "./weight-grads.js";

export * from "./action.js";
export * from "./deps.js";
export * from "./execute.js";
export * from "./validate.js";
export * from "./delays.js";
export * from "./colocate.js";
export * from "./lower.js";
export * from "./weight-grads.js";
export * from "./forward-only.js";
export { vPlacement } from "./v-shape.js";
export type { ScheduleOptions } from "./options.js";
export { roundTripTicks } from "./async.js";

export const SCHEDULE_NAMES = ["gpipe", "1f1b", "interleaved", "zb-h1", "async", "zb-v", "dualpipev"] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

const GENERATORS: Record<ScheduleName, (o: ResolvedOptions) => Schedule> = {
  gpipe,
  "1f1b": oneFOneB,
  interleaved,
  "zb-h1": zeroBubbleH1,
  "zb-v": zeroBubbleV,
  dualpipev: dualPipeV,
  async: asyncOneFOneB,
};

export function isScheduleName(name: string): name is ScheduleName {
  return (SCHEDULE_NAMES as readonly string[]).includes(name);
}

/** Schedules that place stage s on worker min(s, S-1-s) themselves (two stages per worker, a V). */
export function isVSchedule(name: string): boolean {
  return name === "zb-v" || name === "dualpipev";
}

/**
 * The stage-to-worker map a run of `name` uses: the V for V schedules (`workers`, if given, must be
 * S/2), else `workers` contiguous blocks, or undefined (one worker per stage) without `workers`.
 */
export function stagePlacement(name: string, stages: number, workers?: number): number[] | undefined {
  if (!isVSchedule(name)) return workers === undefined ? undefined : contiguousWorkers(stages, workers);
  const map = vPlacement(stages);
  if (workers !== undefined && workers !== stages / 2) {
    throw new Error(`${name} runs ${stages} stages on ${stages / 2} workers (worker r holds stages r and ${stages - 1}-r), got workers=${workers}`);
  }
  return map;
}

/** True for schedules that flush before every STEP (same math as one device). */
export function isSynchronous(name: ScheduleName): boolean {
  return name !== "async";
}

/**
 * Generates the per-worker action lists of a schedule. Errors name the bad value and what is
 * allowed: an unknown name, chunks > 1 outside interleaved, interleaved with M not a multiple of S.
 * `steps` defaults to 1, except for async where it defaults to enough steps to reach steady state.
 */
export function generateSchedule(name: string, opts: ScheduleOptions): Schedule {
  if (!isScheduleName(name)) throw new Error(`unknown schedule '${name}'; choose one of: ${SCHEDULE_NAMES.join(", ")}`);
  const base = resolveOptions(opts);
  const o = name === "async" && opts.steps === undefined ? { ...base, steps: stepsForSteadyState(base.stages, base.microbatches) } : base;
  if (o.chunks !== 1 && name !== "interleaved") {
    throw new Error(`chunks=${o.chunks} is only valid for the interleaved schedule; '${name}' needs chunks=1`);
  }
  const mode = opts.weightGrads ?? "microbatch";
  if (!isWeightGradMode(mode)) throw new Error(`unknown weight-gradient mode '${String(mode)}'; choose one of: ${WEIGHT_GRAD_MODES.join(", ")}`);
  const generated = GENERATORS[name](o);
  const s = mode === "step" ? weightGradsAtStep(generated) : generated;
  if (isVSchedule(name)) {
    // The V is the placement; a caller's map may restate it but not change it.
    const given = opts.stageToWorker;
    if (given && given.join(",") !== s.stageToWorker.join(",")) {
      throw new Error(`${name} places stage s on worker min(s, S-1-s): [${s.stageToWorker.join(",")}]; got stageToWorker [${given.join(",")}]`);
    }
    return s;
  }
  return opts.stageToWorker ? colocate(s, opts.stageToWorker) : s;
}
