// Options shared by every generator, checked once so each generator can assume sane integers.
import type { Action, Schedule } from "./action.js";

export interface ScheduleOptions {
  /** Physical stages S >= 1. */
  stages: number;
  /** Micro-batches per optimizer step M >= 1 (async at batch size 1: M = 1, one sample each). */
  microbatches: number;
  /** Chunks per stage v >= 1 (interleaved only). */
  chunks?: number;
  /** Optimizer steps to lay out (default 1; async defaults to enough steps to reach steady state). */
  steps?: number;
  /** Optional stage -> worker map (several stages may share a worker); default: one worker per stage. */
  stageToWorker?: readonly number[];
  /** Weight gradients with each micro-batch's backward (default) or once per STEP (weight-grads.ts). */
  weightGrads?: "microbatch" | "step";
}

export interface ResolvedOptions {
  stages: number;
  microbatches: number;
  chunks: number;
  steps: number;
}

export function checkPositiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${String(value)}`);
  return v;
}

export function resolveOptions(o: ScheduleOptions, defaultSteps = 1): ResolvedOptions {
  return {
    stages: checkPositiveInt("stages", o.stages, 1),
    microbatches: checkPositiveInt("microbatches", o.microbatches, 1),
    chunks: checkPositiveInt("chunks", o.chunks, 1),
    steps: checkPositiveInt("steps", o.steps, defaultSteps),
  };
}

/** Wraps per-stage lists (one worker per stage) into a Schedule. */
export function fromStageLists(
  name: string,
  o: ResolvedOptions,
  lists: Action[][],
  flags: { splitBackward: boolean; synchronous: boolean },
): Schedule {
  return {
    name,
    stages: o.stages,
    microbatches: o.microbatches,
    chunks: o.chunks,
    steps: o.steps,
    splitBackward: flags.splitBackward,
    synchronous: flags.synchronous,
    stageToWorker: Array.from({ length: o.stages }, (_, s) => s),
    workers: lists,
  };
}
