// Cost model for the simulator: per-stage times of a whole stage's forward, full backward and the
// weight-gradient share of that backward, plus a per-message latency. Interleaved chunks split a
// stage's time evenly (each chunk holds 1/v of the stage's layers), unless the times are given per
// virtual stage. Optional, for measured runs: message time growing with its bytes, the receiver's CPU
// per message, and the machine's cores (fewer cores than busy workers: they share, shared-cores.ts).
import { actionParts, dependencies, isMessage, virtualStage, type Action, type ExecutionCosts, type Schedule } from "../pipeline/schedule/index.js";

export interface CostModel {
  /**
   * Forward time of the whole stage, one number for every stage or one per stage; or one per virtual
   * stage (S*v values, index chunk*S + stage): then each is that chunk's own time.
   */
  forward: number | readonly number[];
  /** Full backward time (input gradient + weight gradient) of the whole stage. */
  backward: number | readonly number[];
  /** Weight-gradient share of `backward` (the W of split schedules); 0 <= weight <= backward. */
  weight: number | readonly number[];
  /** Time of one optimizer STEP (default 0), one number for every stage or one per stage. */
  step?: number | readonly number[];
  /**
   * Time of one REDUCE, the gradient all-reduce over the replicas before a STEP (default 0), one
   * number for every stage or one per stage. Schedules without replicas have no REDUCE.
   */
  reduce?: number | readonly number[];
  /**
   * Time of one FB pair (DualPipeV's overlapped forward and backward) as one action, per physical
   * stage of its forward half (length S); null, or no `pair`: the sum of its halves' F and B.
   */
  pair?: readonly (number | null)[];
  /** Latency added to every dependency that crosses workers (default 0). */
  message?: number;
  /** Seconds per byte added to `message` (default 0); a message's bytes come from `messageBytes`. */
  messagePerByte?: number;
  /**
   * Bytes of the messages across the boundary after virtual stage b (its activation forward, the
   * gradient of it backward): one number for every boundary or one per virtual stage (default 0).
   */
  messageBytes?: number | readonly number[];
  /** CPU seconds a worker spends taking in one message, added to the action that consumes it (default 0). */
  receive?: number;
  /**
   * Cores that run the workers (default: one per worker). With n workers in an action and n + background
   * > cores, each action advances at cores / (n + background) of its speed (fair sharing, as Linux
   * shares cores among runnable processes); a waiting worker uses no core.
   */
  cores?: number;
  /** Runnable tasks from outside the pipeline that compete for the cores (default 0). */
  background?: number;
  /** When each worker can start its list (default 0 for all): ranks released by a collective one after another. */
  start?: readonly number[];
  /**
   * A message needs its sender's core: it leaves when the sender's worker waits, or at most this many
   * seconds after the send while the sender keeps computing (default 0: at once). Models a rank whose
   * MPI communication thread shares the core of its computing thread (see shared-cores.ts).
   */
  senderSlice?: number;
  /**
   * Per worker, a factor >= 1 on the time of its actions: a rank pinned to a core of its own that it
   * shares with other load (default 1 for all).
   */
  slowdown?: readonly number[];
}

/** F = 1, backward = 2 (split: B = 1, W = 1), no message or step cost. */
export const DEFAULT_COSTS: CostModel = { forward: 1, backward: 2, weight: 1, step: 0, message: 0 };

function perStage(name: string, x: number | readonly number[], S: number, V = S): number[] {
  const arr = typeof x === "number" ? new Array<number>(S).fill(x) : [...x];
  if (arr.length !== S && arr.length !== V) {
    throw new Error(`cost model: ${name} has ${arr.length} per-stage values for ${S} stages${V !== S ? ` (or ${V} virtual stages)` : ""}`);
  }
  arr.forEach((v, s) => {
    if (!Number.isFinite(v) || v < 0) throw new Error(`cost model: ${name} of stage ${s} is ${v}; it must be a finite number >= 0`);
  });
  return arr;
}

export interface ResolvedCosts {
  /** Per stage (length S) or per virtual stage (length S*v). */
  forward: number[];
  backward: number[];
  weight: number[];
  step: number[];
  reduce: number[];
  /** Per stage (length S), or empty: see CostModel.pair. */
  pair: (number | null)[];
  message: number;
  messagePerByte: number;
  /** Per virtual stage (length S*v). */
  messageBytes: number[];
  receive: number;
  /** Infinity: one core per worker. */
  cores: number;
  background: number;
  /** Per worker, or empty (all 0). */
  start: number[];
  senderSlice: number;
  /** Per worker, or empty (all 1). */
  slowdown: number[];
}

function nonNegative(name: string, x: number): number {
  if (!Number.isFinite(x) || x < 0) throw new Error(`cost model: ${name} ${x} must be a finite number >= 0`);
  return x;
}

/** `v`: chunks per stage (forward, backward, weight may then have S*v values). */
export function resolveCosts(c: CostModel, S: number, v = 1): ResolvedCosts {
  const V = S * v;
  const forward = perStage("forward", c.forward, S, V);
  const backward = perStage("backward", c.backward, S, V);
  const weight = perStage("weight", c.weight, S, V);
  if (weight.length !== backward.length) throw new Error(`cost model: weight has ${weight.length} values and backward ${backward.length}; give both per stage or both per virtual stage`);
  weight.forEach((w, s) => {
    if (w > backward[s]) throw new Error(`cost model: weight-gradient time ${w} of stage ${s} exceeds its backward time ${backward[s]}`);
  });
  const step = perStage("step", c.step ?? 0, S), reduce = perStage("reduce", c.reduce ?? 0, S), message = nonNegative("message cost", c.message ?? 0);
  if (c.pair && c.pair.length !== S) throw new Error(`cost model: pair has ${c.pair.length} per-stage values for ${S} stages`);
  const pair = (c.pair ?? []).map((x, s) => (x === null ? null : nonNegative(`pair time of stage ${s}`, x)));
  const messageBytes = perStage("messageBytes", typeof c.messageBytes === "number" || c.messageBytes === undefined ? new Array<number>(V).fill(c.messageBytes ?? 0) : c.messageBytes, V);
  const cores = c.cores ?? Infinity;
  if (!(cores >= 1)) throw new Error(`cost model: cores ${cores} must be at least 1`);
  return { forward, backward, weight, step, reduce, pair, message, messagePerByte: nonNegative("messagePerByte", c.messagePerByte ?? 0), messageBytes,
    receive: nonNegative("receive", c.receive ?? 0), cores, background: nonNegative("background", c.background ?? 0),
    start: (c.start ?? []).map((x, w) => nonNegative(`start of worker ${w}`, x)), senderSlice: nonNegative("senderSlice", c.senderSlice ?? 0),
    slowdown: (c.slowdown ?? []).map((x, w) => { if (!(x >= 1) || !Number.isFinite(x)) throw new Error(`cost model: slowdown ${x} of worker ${w} must be a finite number >= 1`); return x; }) };
}

/** Durations of the actions of `s` under the cost model (B is the full backward unless split). */
export function executionCosts(s: Schedule, c: CostModel): ExecutionCosts {
  const r = resolveCosts(c, s.stages, s.chunks);
  const v = s.chunks;
  // A per-stage value is split over the stage's chunks; a per-virtual-stage value is the chunk's own.
  const at = (x: number[], a: Action): number => (x.length === s.stages ? x[a.stage] / v : x[virtualStage(a.stage, a.chunk, s.stages)]);
  const compute = (a: Action): number => {
    switch (a.kind) {
      case "F": return at(r.forward, a);
      case "B": return s.splitBackward ? at(r.backward, a) - at(r.weight, a) : at(r.backward, a);
      case "W": return at(r.weight, a);
      case "STEP": return r.step[a.stage];
      case "REDUCE": return r.reduce[a.stage];
      // DualPipeV's overlapped pair: its own measured time where given, else the F and B of its
      // halves (the runtime runs them one after the other; overlap on hardware would lower it).
      case "FB": return r.pair[a.stage] ?? actionParts(a).reduce((t, p) => t + compute(p), 0);
    }
  };
  const received = (a: Action): number => dependencies(a, s).filter((d) => isMessage(d, a, s.stageToWorker)).length;
  return {
    duration: (a) => compute(a) + (r.receive > 0 ? r.receive * received(a) : 0),
    // A message crosses the boundary after the lower of the two virtual stages.
    message: (from, to) => r.message + r.messagePerByte *
      r.messageBytes[Math.min(virtualStage(from.stage, from.chunk, s.stages), virtualStage(to.stage, to.chunk, s.stages))],
  };
}
