// Messages between the main thread and pipeline worker threads, and between neighbouring workers.
import type { MessagePort } from "node:worker_threads";
import type { BackendName } from "../../backend/index.js";
import type { MicrobatchMetrics } from "../stage.js";
import type { Payload } from "./interpreter.js";
import type { PipelineSetup } from "./setup.js";
import type { AsyncState } from "./async-state.js";
import type { PlainOptimizerState, StateEntry } from "../../optim/index.js";
import type { RankTimings } from "./action-records.js";

// A named tensor as plain arrays (state dicts cross threads this way); defined in optim.
export type { StateEntry };

export interface WorkerInit {
  worker: number;
  setup: PipelineSetup;
  backend: BackendName;
  /** Initial parameters and buffers (the main thread's, after any checkpoint load): of `units` only. */
  state: StateEntry[];
  /** The units `state` covers (this worker's); absent or null: the whole model's state. */
  units?: number[] | null;
  /** peers[w] = port to worker w (absent for itself). */
  peers: Record<number, MessagePort>;
}

/** Main -> worker. */
export type ToWorker =
  | {
    type: "step";
    /** Learning-rate factor of each STEP of the list (STEP k uses lrFactors[k]). */
    lrFactors: number[];
    /** Model inputs of the micro-batches (only for the worker holding virtual stage 0). */
    inputs: { mb: number; data: Float32Array; shape: number[] }[];
    /** Targets (only for the worker holding the last virtual stage). */
    targets: ({ mb: number } & Omit<Extract<Payload, { kind: "targets" }>, "kind">)[];
  }
  | {
    /** Forward-only lists over `count` micro-batches (evaluation): "eval" reports metrics, "predict" outputs. */
    type: "forward";
    mode: "eval" | "predict";
    count: number;
    inputs: { mb: number; data: Float32Array; shape: number[] }[];
    targets: ({ mb: number } & Omit<Extract<Payload, { kind: "targets" }>, "kind">)[];
  }
  | { type: "state" }
  | { type: "optimizer" }
  | { type: "async-state" }
  | { type: "close" };

/** Worker -> main. */
export type FromWorker =
  | { type: "ready"; worker: number }
  /** peakBytes: the worker's largest JS heap + external (ArrayBuffer) memory seen so far. */
  | { type: "done"; worker: number; metrics: [number, MicrobatchMetrics][]; busy: number; peaks: [number, number][]; peakBytes: number;
    /** The last virtual stage's outputs of a "predict" list. */
    outputs?: { mb: number; data: Float32Array; shape: number[] }[];
    /** The step's action and message records (instrumentation.recordActions, "step" lists only). */
    timings?: RankTimings }
  | { type: "state"; worker: number; entries: StateEntry[] }
  | { type: "optimizer"; worker: number; states: PlainOptimizerState[] }
  /** The worker's stages' AsyncRuntime.snapshot(), or null without an asynchronous method. */
  | { type: "async-state"; worker: number; state: AsyncState | null }
  | { type: "error"; worker: number; stage: number | null; action: string | null; message: string; stack?: string };

/** Worker -> worker. */
export interface PeerMessage { key: string; payload: Payload }
