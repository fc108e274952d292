// Cost model for the simulator: per-stage times of a whole stage's forward, full backward and the
// weight-gradient share of that backward, plus a per-message latency. Interleaved chunks split a
// stage's time evenly (each chunk holds 1/v of the stage's layers).
import type { Action, ExecutionCosts, Schedule } from "../pipeline/schedule/index.js";

export interface CostModel {
  /** Forward time of the whole stage, one number for every stage or one per stage. */
  forward: number | readonly number[];
  /** Full backward time (input gradient + weight gradient) of the whole stage. */
  backward: number | readonly number[];
  /** Weight-gradient share of `backward` (the W of split schedules); 0 <= weight <= backward. */
  weight: number | readonly number[];
  /** Time of one optimizer STEP (default 0), one number for every stage or one per stage. */
  step?: number | readonly number[];
  /** Latency added to every dependency that crosses workers (default 0). */
  message?: number;
}

/** F = 1, backward = 2 (split: B = 1, W = 1), no message or step cost. */
export const DEFAULT_COSTS: CostModel = { forward: 1, backward: 2, weight: 1, step: 0, message: 0 };

function perStage(name: string, x: number | readonly number[], S: number): number[] {
  const arr = typeof x === "number" ? new Array<number>(S).fill(x) : [...x];
  if (arr.length !== S) throw new Error(`cost model: ${name} has ${arr.length} per-stage values for ${S} stages`);
  arr.forEach((v, s) => {
    if (!Number.isFinite(v) || v < 0) throw new Error(`cost model: ${name} of stage ${s} is ${v}; it must be a finite number >= 0`);
  });
  return arr;
}

export interface ResolvedCosts {
  forward: number[];
  backward: number[];
  weight: number[];
  step: number[];
  message: number;
}

export function resolveCosts(c: CostModel, S: number): ResolvedCosts {
  const forward = perStage("forward", c.forward, S);
  const backward = perStage("backward", c.backward, S);
  const weight = perStage("weight", c.weight, S);
  weight.forEach((w, s) => {
    if (w > backward[s]) throw new Error(`cost model: weight-gradient time ${w} of stage ${s} exceeds its backward time ${backward[s]}`);
  });
  const step = perStage("step", c.step ?? 0, S), message = c.message ?? 0;
  if (!Number.isFinite(message) || message < 0) throw new Error(`cost model: message cost ${message} must be a finite number >= 0`);
  return { forward, backward, weight, step, message };
}

/** Durations of the actions of `s` under the cost model (B is the full backward unless split). */
export function executionCosts(s: Schedule, c: CostModel): ExecutionCosts {
  const r = resolveCosts(c, s.stages);
  const v = s.chunks;
  return {
    duration(a: Action): number {
      switch (a.kind) {
        case "F": return r.forward[a.stage] / v;
        case "B": return (s.splitBackward ? r.backward[a.stage] - r.weight[a.stage] : r.backward[a.stage]) / v;
        case "W": return r.weight[a.stage] / v;
        case "STEP": return r.step[a.stage];
      }
    },
    message: () => r.message,
  };
}
