// Messages between the main thread and pipeline worker threads, and between neighbouring workers.
import type { MessagePort } from "node:worker_threads";
import type { BackendName } from "../../backend/index.js";
import type { MicrobatchMetrics } from "../stage.js";
import type { Payload, WorkerInterpreter } from "./interpreter.js";
import type { PipelineSetup } from "./setup.js";
import type { AsyncState } from "./async-state.js";
import type { PlainOptimizerState, StateEntry } from "../../optim/index.js";
import type { RankTimings } from "./action-records.js";
import type { ShmGroupHandle } from "../../transport/shm-collectives.js";
import type { ShardPlan } from "../../parallel/tp-shard.js";
import type { WorkerMemory } from "./memory.js";
import type { PreparedInput } from "./executor.js";
import type { PlainOutput } from "./list-results.js";

export interface WorkerInit {
  /** The pipeline worker this thread is, in replica `replica` (thread id: replica * workers + worker). */
  worker: number;
  replica: number;
  /** The shared-memory group of this worker's replicas (REDUCE), or null without replicas. */
  group: ShmGroupHandle | null;
  /** This thread's rank in its worker's tensor group, and that group (null without tensor parallelism). */
  tensor: number;
  tensorGroup: ShmGroupHandle | null;
  /** setup.clipGradNorm: the replica's workers x tensor ranks (rank worker * T + tensor), for the norm sum; else null. */
  normGroup: ShmGroupHandle | null;
  setup: PipelineSetup;
  backend: BackendName;
  /** Initial parameters and buffers (the main thread's, after any checkpoint load): of `units` only. */
  state: StateEntry[];
  /** The units `state` covers (this worker's); absent or null: the whole model's state. */
  units?: number[] | null;
  /** peers[w] = port to worker w of the same replica (absent for itself). */
  peers: Record<number, MessagePort>;
  /** How long a REDUCE waits for the other replicas before it fails the run. */
  reduceTimeoutMs: number;
}

/** Messages a worker delivers to itself for a list: inputs (first stage) and targets (last stage), by key. */
export type Deliveries = [string, Payload][];

/** Main -> worker. */
export type ToWorker =
  /** lrFactors: the learning-rate factor of each STEP of the list (STEP k uses lrFactors[k]). */
  | { type: "step"; lrFactors: number[]; deliveries: Deliveries }
  /** Forward-only lists over `count` micro-batches (evaluation): "eval" reports metrics, "predict" outputs. */
  | { type: "forward"; mode: "eval" | "predict"; count: number; deliveries: Deliveries }
  | { type: "state" }
  /** New weights: this worker's units' entries of the full model's state. */
  | { type: "load"; entries: StateEntry[] }
  | { type: "optimizer" }
  | { type: "async-state" }
  | { type: "close" };

/** Worker -> main; `worker` is the sending thread's id. */
export type FromWorker =
  /** ompThreads: the native addon's OpenMP threads in this worker (null on another backend). */
  | { type: "ready"; worker: number; ompThreads: number | null }
  /**
   * peakBytes: the worker's largest JS heap + external (ArrayBuffer) memory so far; seconds: the list's
   * wall time; memory: counted from tensors; outputs: a "predict" list's; prepared: stage 0's of a
   * `prepare` step; timings: recordActions, "step" lists only; gradSquares: setup.gradientNorms'.
   */
  | { type: "done"; worker: number; metrics: [number, MicrobatchMetrics][]; busy: WorkerInterpreter["busy"]; seconds: number; peaks: [number, number][];
    peakBytes: number; memory: WorkerMemory; outputs: PlainOutput[]; prepared?: PreparedInput[]; timings?: RankTimings; gradSquares?: [number, number][] }
  /** `plan`: how the entries are split over the worker's tensor group (empty: whole). */
  | { type: "state"; worker: number; entries: StateEntry[]; plan: ShardPlan }
  | { type: "loaded"; worker: number }
  | { type: "optimizer"; worker: number; states: PlainOptimizerState[]; plan: ShardPlan }
  /** The worker's stages' AsyncRuntime.snapshot(), or null without an asynchronous method. */
  | { type: "async-state"; worker: number; state: AsyncState | null }
  | { type: "error"; worker: number; stage: number | null; action: string | null; message: string; stack?: string };

/** Worker -> worker. */
export interface PeerMessage { key: string; payload: Payload }
