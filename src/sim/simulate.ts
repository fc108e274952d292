// The simulator: validates a schedule, then runs its per-worker lists against a cost model and
// reports the timeline, makespan, bubble fraction, per-worker idle time and peak activations.
import { assertValidSchedule, execute, type Schedule, ScheduleError, type Timed } from "../pipeline/schedule/index.js";
import { type CostModel, DEFAULT_COSTS, executionCosts, resolveCosts } from "./cost-model.js";
import { executeSharedCores } from "./shared-cores.js";

export interface SimResult {
  readonly schedule: Schedule;
  readonly costs: CostModel;
  /** timeline[w]: worker w's actions with start/end, in list order. */
  readonly timeline: Timed[][];
  /** Time from 0 to the last action's end. */
  readonly makespan: number;
  /** Busy time per worker (sum of its action durations; with shared cores, the time its actions ran, slowed or not). */
  readonly busy: number[];
  /** makespan - busy, per worker. */
  readonly idle: number[];
  /** 1 - sum(busy) / (workers * makespan). */
  readonly bubbleFraction: number;
  /** sum(busy) / makespan: the speed-up over running all the work on one worker. */
  readonly speedup: number;
  /** Peak live activations per stage (see validateSchedule). */
  readonly peakActivations: number[];
}

export function simulate(s: Schedule, costs: CostModel = DEFAULT_COSTS): SimResult {
  const { peakActivations } = assertValidSchedule(s);
  const ec = executionCosts(s, costs);
  const { cores, background, start, senderSlice, slowdown } = resolveCosts(costs, s.stages, s.chunks);
  // One core per worker, no other load, every worker from time 0: the plain list-order run;
  // otherwise the event-driven one (the same timeline when nothing is shared).
  const shared = cores < s.workers.length + background || background > 0 || start.length > 0 || senderSlice > 0 || slowdown.length > 0;
  const run = shared ? { timeline: executeSharedCores(s, ec, { cores, background, start, senderSlice, slowdown: slowdown.length ? slowdown : undefined }), deadlock: null } : execute(s, ec);
  if (run.deadlock) throw new ScheduleError(run.deadlock.message);
  const makespan = Math.max(0, ...run.timeline.map((row) => (row.length ? row[row.length - 1].end : 0)));
  const busy = run.timeline.map((row) => row.reduce((t, x) => t + (x.end - x.start), 0));
  const total = busy.reduce((a, b) => a + b, 0);
  const W = s.workers.length;
  return {
    schedule: s,
    costs,
    timeline: run.timeline,
    makespan,
    busy,
    idle: busy.map((b) => makespan - b),
    bubbleFraction: makespan > 0 ? 1 - total / (W * makespan) : 0,
    speedup: makespan > 0 ? total / makespan : 0,
    peakActivations,
  };
}
