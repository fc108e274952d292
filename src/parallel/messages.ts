// Messages between the main thread and data-parallel replica threads. Gradients never travel here:
// they are reduced in shared memory (src/transport/shm-collectives.ts).
import type { BackendName } from "../backend/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import type { OptimizerConfig, PlainOptimizerState, StateEntry } from "../optim/index.js";
import type { ShmGroupHandle } from "../transport/shm-collectives.js";

// State dicts and optimizer state cross threads in the plain form defined in optim.
export type { StateEntry, PlainOptimizerState };
export { toPlain as toPlainOptimizerState, fromPlain as fromPlainOptimizerState } from "../optim/index.js";

/** Test hook: replica `replica` throws `message` at the start of step `step` (0-based). */
export interface ReplicaFault { replica: number; step: number; message?: string }

export interface ReplicaInit {
  rank: number;
  spec: ModelSpec;
  seed: number;
  backend: BackendName;
  optimizer: OptimizerConfig;
  state: StateEntry[];
  optimizerState: PlainOptimizerState | null;
  group: ShmGroupHandle;
  timeoutMs: number;
  faults: ReplicaFault[];
}

export type ToReplica =
  | { type: "step"; step: number; x: Float32Array; shape: number[]; y: Int32Array; scale: number; lrFactor: number }
  | { type: "state" }
  | { type: "optimizer" }
  /** Leave: the thread closes its port and exits by itself (never killed inside a native kernel). */
  | { type: "close" };

/** Per-step metrics of one replica; `loss` is its shard's summed loss times the global scale. */
export interface ReplicaMetrics {
  loss: number;
  correct: number;
  count: number;
  /** Seconds in forward + backward, in the gradient all-reduce (incl. waiting), in the optimizer step. */
  compute: number;
  allReduce: number;
  update: number;
  /** Seconds from receiving the step message to posting the reply. */
  total: number;
}

export type FromReplica =
  | { type: "ready"; rank: number; native: { ompThreads: number } | null }
  | { type: "done"; rank: number; metrics: ReplicaMetrics }
  | { type: "state"; rank: number; entries: StateEntry[] }
  | { type: "optimizer"; rank: number; state: PlainOptimizerState }
  /** `abortedBy` is set when this error is only the consequence of rank `abortedBy` aborting the group. */
  | { type: "error"; rank: number; message: string; stack?: string; abortedBy?: number };
