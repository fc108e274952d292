// Where a test reaches into a run it cannot call directly (a CLI process, an MPI rank): production
// code reads this object, which stays empty unless a test preloads a module that fills it
// (test/seam-preload.ts, through NODE_OPTIONS=--import). No production path reads a fault variable.

/**
 * A test fault, read by the pipeline runtime's instrumentation (defined here, below the runtime):
 * `during: "recompute"` fires only in a forward that records a graph inside B; `replica` limits it
 * to one replica's workers; `occurrence` (0-based) to the n-th matching forward (e.g. the n-th step
 * of a one-micro-batch schedule).
 */
export interface FaultSpec { unit: number; microbatch: number; message?: string; during?: "any" | "recompute"; replica?: number; occurrence?: number }

export interface TestSeam {
  /** Units that throw on given micro-batches (every `train` pipeline run). */
  faults?: FaultSpec[];
  /** Called at each point of the `save`-th parted save (1-based) on `rank`; a test may kill the process there. */
  crashSave?: (save: number, rank: number, point: "mid-part" | "after-part" | "before-manifest") => void;
}

export const testSeam: TestSeam = {};
