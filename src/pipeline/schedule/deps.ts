// Dependencies of an action: F(s-1,j)->F(s,j), B(s+1,j)->B(s,j), F(last,j)->B(last,j),
// B(s,j)->W(s,j), over virtual stages (stage s chunk c = virtual stage c*S+s). A STEP needs every
// B (and W) of its micro-batches on its stage; in synchronous schedules a forward of step k+1 needs
// the stage's STEP k (the flush). With replicas, REDUCE k takes over what STEP k needs and STEP k
// needs only its REDUCE. Sends/receives are exactly the cross-worker edges of this graph.
import { action, type Action, actionKey, actionParts, atVirtualStage, virtualStage } from "./action.js";

export interface DepShape {
  stages: number;
  microbatches: number;
  chunks: number;
  splitBackward: boolean;
  synchronous: boolean;
  /** Data-parallel copies; > 1: a REDUCE precedes every STEP. */
  replicas?: number;
}

export function dependencies(a: Action, sh: DepShape): Action[] {
  const S = sh.stages;
  const last = S * sh.chunks - 1;
  switch (a.kind) {
    case "F": {
      const vs = virtualStage(a.stage, a.chunk, S);
      const out: Action[] = vs > 0 ? [atVirtualStage("F", vs - 1, a.microbatch, S)] : [];
      const step = Math.floor(a.microbatch / sh.microbatches);
      if (sh.synchronous && step > 0) out.push(action(a.stage, "STEP", step - 1));
      return out;
    }
    case "B": {
      const vs = virtualStage(a.stage, a.chunk, S);
      return [vs === last ? action(a.stage, "F", a.microbatch, a.chunk) : atVirtualStage("B", vs + 1, a.microbatch, S)];
    }
    case "W":
      return [action(a.stage, "B", a.microbatch, a.chunk)];
    case "STEP":
      if ((sh.replicas ?? 1) > 1) return [action(a.stage, "REDUCE", a.microbatch)];
      return stepInputs(a, sh);
    case "REDUCE":
      return stepInputs(a, sh);
    case "FB": {
      // The pair starts when both halves could; a half that feeds the other is no outside dependency.
      const parts = actionParts(a), own = new Set(parts.map(actionKey));
      return parts.flatMap((p) => dependencies(p, sh)).filter((d) => !own.has(actionKey(d)));
    }
  }
}

/** What the step's first action on a stage (its REDUCE, or its STEP) waits for: every backward of the step, and the step before. */
function stepInputs(a: Action, sh: DepShape): Action[] {
  const out: Action[] = [];
  if (a.microbatch > 0) out.push(action(a.stage, "STEP", a.microbatch - 1));
  const M = sh.microbatches;
  for (let j = a.microbatch * M; j < (a.microbatch + 1) * M; j++) {
    for (let c = 0; c < sh.chunks; c++) out.push(action(a.stage, sh.splitBackward ? "W" : "B", j, c));
  }
  // With a split backward, W(s,j) already implies B(s,j).
  return out;
}

/** The part of `a` (itself, or an FB's half) that depends on `dep`. */
export function consumerOf(dep: Action, a: Action, sh: DepShape): Action {
  if (a.kind !== "FB") return a;
  const k = actionKey(dep);
  return actionParts(a).find((p) => dependencies(p, sh).some((d) => actionKey(d) === k)) ?? a;
}

/** True when the dependency edge dep -> a crosses workers (a message). */
export function isMessage(dep: Action, a: Action, stageToWorker: readonly number[]): boolean {
  return stageToWorker[dep.stage] !== stageToWorker[a.stage];
}
