// V placement (ZB-V, DualPipeV): S = 2p physical stages on p workers, worker r holding stages r and
// S-1-r. A micro-batch runs down the workers on stages 0..p-1 and back up on p..S-1, so the first
// and last stages share worker 0 and the turn at the bottom (stage p-1 to p) stays on worker p-1:
// no message. Expressed through stageToWorker alone (chunks = 1), so executors, the partitioner
// (S stages in model order) and checkpoints (parts per stage) need nothing new.
import { action, type Action, type Schedule } from "./action.js";
import type { ResolvedOptions } from "./options.js";

/** stageToWorker of the V: stage s on worker min(s, S-1-s). */
export function vPlacement(stages: number): number[] {
  if (!Number.isInteger(stages) || stages < 2 || stages % 2 !== 0) {
    throw new Error(`a V schedule needs an even stage count >= 2 (worker r holds stages r and S-1-r), got stages=${stages}`);
  }
  return Array.from({ length: stages }, (_, s) => Math.min(s, stages - 1 - s));
}

/** The two stages worker r holds: [down, up] = [r, S-1-r]. */
export function vStagesOf(r: number, stages: number): [number, number] {
  return [r, stages - 1 - r];
}

/**
 * Wraps one step's per-worker order (micro-batch ids 0..M-1) into a Schedule of `o.steps` steps:
 * each step offsets the ids by k*M and ends with a STEP of both stages of the worker.
 */
export function vSchedule(name: string, o: ResolvedOptions, oneStep: (r: number) => Action[], flags: { splitBackward: boolean }): Schedule {
  const { stages: S, microbatches: M, steps } = o;
  const map = vPlacement(S);
  const shift = (a: Action, base: number): Action =>
    a.backward ? { ...a, microbatch: a.microbatch + base, backward: shift(a.backward, base) } : { ...a, microbatch: a.microbatch + base };
  const workers = Array.from({ length: S / 2 }, (_, r) => {
    const one = oneStep(r);
    const list: Action[] = [];
    for (let k = 0; k < steps; k++) list.push(...one.map((a) => shift(a, k * M)), ...vStagesOf(r, S).map((s) => action(s, "STEP", k)));
    return list;
  });
  return { name, stages: S, microbatches: M, chunks: 1, steps, splitBackward: flags.splitBackward, synchronous: true, stageToWorker: map, workers };
}
