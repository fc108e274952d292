// What one rank of a processes run holds of the run's state, for checkpoints written one file per
// rank (src/pipeline/runtime/parted-save.ts): its own stages' tensors under their state-dict names, its
// stages' optimizer state and asynchronous state, without gathering anything from other ranks.
import type { Tensor } from "../../tensor/tensor.js";
import type { OptimizerState } from "../../optim/index.js";
import type { AsyncState } from "./async-state.js";
import type { Executor } from "./executor.js";

export interface LocalState {
  rank: number;
  /** Whether this rank writes a part: the first replica's ranks (the others hold copies of their stages). */
  writes: boolean;
  /**
   * This rank's virtual stages (chunk * S + stage), ascending, with their live tensors (not copies:
   * write them before the next step). Virtual stages hold the model's units in order, so sorting
   * every rank's entries by `stage` gives the state-dict order.
   */
  stages: { stage: number; state: Map<string, Tensor> }[];
  /** Each of this rank's physical stages' optimizer state (copies), in stage order. */
  optimizer: OptimizerState[];
  /** This rank's asynchronous state (null on synchronous runs and in a warm-up). */
  async: AsyncState | null;
}

/** An executor whose workers are separate processes, each able to save its own share. */
export interface LocalStateSource {
  localState(): LocalState;
  /** Collective over every rank: every rank's (small, JSON-like) value, in rank order. */
  gatherAll<T>(value: T, what: string): Promise<T[]>;
  /** Collective: returns once every rank is here. */
  barrier(what: string): Promise<void>;
}

export function hasLocalState(e: Executor): e is Executor & LocalStateSource {
  return typeof (e as Partial<LocalStateSource>).localState === "function";
}
