// Messages between the elastic trainer (main thread) and its phase workers. A phase is one layout
// (frozen prefix, S stages x R replicas, M micro-batches, partition); worker (r, s) runs stage s of
// replica r. Gradients never travel in messages: replicas of a stage all-reduce them in shared memory.
import type { MessagePort } from "node:worker_threads";
import type { BackendName } from "../../backend/index.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import type { ShmGroupHandle } from "../../transport/shm-collectives.js";
import type { MicrobatchMetrics } from "../stage.js";
import type { PlainOptimizerState } from "../../optim/index.js";
import type { OptimizerConfig } from "../runtime/setup.js";
import type { StateEntry } from "../runtime/messages.js";

export type { StateEntry };

export interface ElasticWorkerInit {
  spec: ModelSpec;
  seed: number;
  backend: BackendName;
  /** The whole model's parameters and buffers (every worker rebuilds the model, then keeps its stage). */
  state: StateEntry[];
  frozenLayers: number;
  /** Units [0, prefix) are served by the activation cache: stage 0 runs them only to fill it. */
  prefix: number;
  /** [start, end) unit range of every stage (starting at `prefix`). */
  ranges: [number, number][];
  stage: number;
  replica: number;
  replicas: number;
  microbatches: number;
  optimizer: OptimizerConfig;
  /** Optimizer state of this stage's trainable parameters, or null to start fresh. */
  optimizerState: PlainOptimizerState | null;
  /** Shared-memory group of this stage's replicas (null with one replica). */
  group: ShmGroupHandle | null;
  timeoutMs: number;
  /** Ports to the previous / next stage of the same replica. */
  prev: MessagePort | null;
  next: MessagePort | null;
}

export type ToElasticWorker =
  | {
    type: "step";
    lrFactor: number;
    /** Stage 0: the replica's micro-batch inputs (raw images when `fill`, else the prefix's outputs). */
    inputs: { data: Float32Array; shape: number[] }[];
    /** Stage 0: run the cached prefix on the inputs first and send its outputs back. */
    fill: boolean;
    /** Last stage: targets per micro-batch. */
    targets: Int32Array[];
    scale: number;
  }
  | { type: "state" }
  | { type: "optimizer" }
  | { type: "close" };

export type FromElasticWorker =
  | { type: "ready"; worker: number }
  | {
    type: "done"; worker: number; metrics: [number, MicrobatchMetrics][]; busy: number;
    /** Replica 0 only: [freeze layer, squared L2 norm of the reduced gradient held by this stage]. */
    gradSq: [number, number][];
    /** Stage 0 on a fill: the prefix outputs per micro-batch. */
    prefixOut: { data: Float32Array; shape: number[] }[];
  }
  | { type: "state"; worker: number; entries: StateEntry[] }
  | { type: "optimizer"; worker: number; state: PlainOptimizerState | null }
  /** `abortedBy` is set when this error is only the consequence of replica `abortedBy` aborting the stage's group. */
  | { type: "error"; worker: number; message: string; stack?: string; abortedBy?: number };

export interface PeerMessage { key: string; data: Float32Array; shape: number[] }
