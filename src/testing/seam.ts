// Where a test reaches into a run it cannot call directly (a CLI process, an MPI rank): production
// code reads this object, which stays empty unless a test preloads a module that fills it
// (test/seam-preload.ts, through NODE_OPTIONS=--import). No production path reads a fault variable.
import type { FaultSpec } from "../pipeline/runtime/instrumentation.js";

export interface TestSeam {
  /** Units that throw on given micro-batches (every `train` pipeline run). */
  faults?: FaultSpec[];
  /** Called at each point of the `save`-th parted save (1-based) on `rank`; a test may kill the process there. */
  crashSave?: (save: number, rank: number, point: "mid-part" | "after-part" | "before-manifest") => void;
}

export const testSeam: TestSeam = {};
