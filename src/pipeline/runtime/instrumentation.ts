// Test and benchmark hooks of a pipeline run, kept out of the production set-up: one optional,
// plain-JSON `instrumentation` field of PipelineSetup (so a worker thread rebuilds the same hooks).
// Normal runs never set it.
//   faults          a unit throws when it runs forward for a given micro-batch (a failing stage must
//                   stop the run with that stage's error, never hang)
//   syntheticCosts  every F/B/W action also sleeps a fixed time, so pipeline overlap can be measured
//                   on a machine without spare cores
//   recordActions   every interpreter keeps a timing record of each action (action-records.ts)
import { actionParts, isStepKind, type Action } from "../schedule/action.js";
import type { UnitHook } from "../stage.js";
import type { FaultSpec } from "../../testing/seam.js";

export interface Instrumentation {
  /** Unit `unit` throws `message` when it runs forward for micro-batch `microbatch`. */
  faults?: FaultSpec[];
  /** Seconds physical stage s sleeps in each of its F (B, W) actions: F[s], B[s], W[s]. */
  syntheticCosts?: { F: number[]; B: number[]; W: number[] };
  /** Keep an ActionRecord (wall and CPU time) of every action the interpreters run. */
  recordActions?: boolean;
}

/** The per-action sleep of `syntheticCosts`, chunks sharing a stage's cost evenly. */
export function syntheticDelay(inst: Instrumentation | undefined, chunks: number): ((a: Action) => number) | undefined {
  const c = inst?.syntheticCosts;
  if (!c) return undefined;
  return (a) => actionParts(a).reduce((t, p) => t + (isStepKind(p.kind) || p.kind === "FB" ? 0 : c[p.kind][p.stage] / chunks), 0);
}

/**
 * The stage hook that fires the faults (undefined without any), checked against the model's unit
 * count so a fault on a unit that does not exist is an error, not a silent no-op.
 */
export function faultHook(inst: Instrumentation | undefined, units: number): UnitHook | undefined {
  const faults = inst?.faults ?? [];
  if (faults.length === 0) return undefined;
  const bad = faults.find((f) => !Number.isInteger(f.unit) || f.unit < 0 || f.unit >= units);
  if (bad) throw new Error(`fault injection: unit ${bad.unit} does not exist (the model has ${units})`);
  const seen = faults.map(() => 0);
  return (unit, microbatch, recording) => {
    faults.forEach((f, i) => {
      // A recomputing stage's first forward records nothing; its recomputation in B does.
      if (f.unit !== unit || f.microbatch !== microbatch || (f.during === "recompute" && !recording)) return;
      const n = seen[i]++;
      if (f.occurrence === undefined || f.occurrence === n) throw new Error(f.message ?? `injected fault in unit ${f.unit} on micro-batch ${f.microbatch}`);
    });
  };
}

/** The instrumentation replica `replica`'s workers get: the faults meant for it. */
export function forReplica(inst: Instrumentation | undefined, replica: number): Instrumentation | undefined {
  if (!inst?.faults) return inst;
  return { ...inst, faults: inst.faults.filter((f) => f.replica === undefined || f.replica === replica) };
}
