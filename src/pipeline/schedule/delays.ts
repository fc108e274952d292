// Delays measured from the IR. The delay of micro-batch j on stage s is the number of that stage's
// STEPs between F(s,j) and B(s,j) in its worker's list: how many updates the weights moved between
// the forward and the backward of j. The per-stage delay tau_s is the largest of these: the delay of
// the oldest micro-batch of a step, which expectedDelay's closed form gives; later micro-batches of the same
// step are at most one update fresher. Every method takes its tau from `expectedDelay` or from here.
import { actionParts, formatAction, type Schedule } from "./action.js";

/**
 * The closed form: tau_s = ceil((2(S-1-s)+1) / M) for a steady-state asynchronous 1F1B
 * pipeline (batch size 1: M = 1, tau_s = 2(S-1-s)+1). Stage S-1 has tau = 1 for M = 1.
 */
export function expectedDelay(S: number, s: number, M: number): number {
  if (!Number.isInteger(S) || S < 1) throw new Error(`expectedDelay: stages must be a positive integer, got ${S}`);
  if (!Number.isInteger(s) || s < 0 || s >= S) throw new Error(`expectedDelay: stage ${s} is outside 0..${S - 1}`);
  if (!Number.isInteger(M) || M < 1) throw new Error(`expectedDelay: microbatches must be a positive integer, got ${M}`);
  return Math.ceil((2 * (S - 1 - s) + 1) / M);
}

export interface MeasuredDelays {
  /** perMicrobatch[s][j]: STEPs of stage s between F(s,j) and B(s,j) (chunk 0). */
  readonly perMicrobatch: number[][];
  /** perStage[s]: the largest delay on stage s (tau_s). */
  readonly perStage: number[];
}

export function measureDelays(s: Schedule): MeasuredDelays {
  const N = s.steps * s.microbatches;
  const perMicrobatch = Array.from({ length: s.stages }, () => new Array<number>(N).fill(-1));
  const stepsSeen = new Array<number>(s.stages).fill(0);
  const atForward = Array.from({ length: s.stages }, () => new Array<number>(N).fill(-1));
  for (const list of s.workers) {
    for (const a of list.flatMap(actionParts)) {
      if (a.chunk !== 0 && a.kind !== "STEP") continue;
      if (a.kind === "STEP") stepsSeen[a.stage]++;
      else if (a.kind === "F") atForward[a.stage][a.microbatch] = stepsSeen[a.stage];
      else if (a.kind === "B") {
        const f = atForward[a.stage][a.microbatch];
        if (f < 0) throw new Error(`measureDelays: ${formatAction(a)} comes before its forward`);
        perMicrobatch[a.stage][a.microbatch] = stepsSeen[a.stage] - f;
      }
    }
  }
  return { perMicrobatch, perStage: perMicrobatch.map((row) => Math.max(0, ...row)) };
}

/** Steps an asynchronous schedule needs so that every stage reaches its steady-state delay. */
export function stepsForSteadyState(S: number, M: number): number {
  return expectedDelay(S, 0, M) + 2;
}
