// What one MPI rank feeds its own interpreter: the first stage's rank the inputs, the last stage's
// rank the targets, each replica its share (src/pipeline/runtime/processes.ts). A replica takes its
// rows of every training micro-batch (the gradients are summed over replicas) and whole evaluation
// micro-batches r, r+R, ... (the metrics are summed in micro-batch order afterwards).
import type { Schedule } from "../schedule/action.js";
import { Tensor } from "../../tensor/tensor.js";
import { partOf } from "../../transport/reduce.js";
import { targetRows, type Target } from "../stage.js";
import type { SplitBatch } from "./executor.js";
import { messageKey, targetsPayload, type Payload } from "./interpreter.js";

export interface ReplicaPosition { worker: number; replica: number; replicas: number }

const feedsFirstStage = (s: Schedule, worker: number): boolean => s.stageToWorker[0] === worker;
const feedsLastStage = (s: Schedule, worker: number): boolean => s.stageToWorker[(s.stages * s.chunks - 1) % s.stages] === worker;

/** The messages this rank delivers itself for a step of `batches`: its replica's rows of each. */
export function stepDeliveries(schedule: Schedule, batches: readonly SplitBatch[], at: ReplicaPosition): [string, Payload][] {
  const M = schedule.microbatches, R = at.replicas;
  const rowsOf = (rows: number): [number, number] => {
    if (rows < R) throw new Error(`a micro-batch of ${rows} example(s) cannot be shared by ${R} replicas; use a larger --batch or fewer --microbatches`);
    return partOf(rows, at.replica, R);
  };
  const out: [string, Payload][] = [];
  if (feedsFirstStage(schedule, at.worker)) {
    batches.forEach((b, k) => b.inputs.forEach((x, j) => {
      const [r0, r1] = rowsOf(x.shape[0]);
      const row = x.size / x.shape[0];
      const mb = k * M + j;
      out.push([messageKey.activation(0, mb), { kind: "tensor", data: x.data.subarray(r0 * row, r1 * row), shape: [r1 - r0, ...x.shape.slice(1)], ...(b.prepare ? { prepare: mb } : {}) }]);
    }));
  }
  if (feedsLastStage(schedule, at.worker)) {
    // The replica's targets follow its examples (T per example for next-token targets).
    batches.forEach((b, k) => b.labels.forEach((t, j) => {
      const rows = b.inputs[j].shape[0], per = targetRows(t) / rows;
      const [r0, r1] = rowsOf(rows);
      out.push([messageKey.targets(k * M + j), targetsPayload(rowsOfTarget(t, r0 * per, r1 * per), b.scale)]);
    }));
  }
  return out;
}

/**
 * The messages this worker delivers itself for a forward-only list over `inputs` (evaluation with
 * `labels`, prediction without): its replica's whole micro-batches `ids` (replica r of R: r, r+R,
 * ...), under local ids 0, 1, ...
 */
export function forwardDeliveries(schedule: Schedule, inputs: readonly Tensor[], labels: readonly Target[] | null, scale: number,
  at: ReplicaPosition): { ids: number[]; deliveries: [string, Payload][] } {
  const ids = Array.from({ length: inputs.length }, (_, j) => j).filter((j) => j % at.replicas === at.replica);
  const deliveries: [string, Payload][] = [];
  if (feedsFirstStage(schedule, at.worker)) ids.forEach((j, i) => deliveries.push([messageKey.activation(0, i), { kind: "tensor", data: inputs[j].data, shape: [...inputs[j].shape] }]));
  if (labels && feedsLastStage(schedule, at.worker)) ids.forEach((j, i) => deliveries.push([messageKey.targets(i), targetsPayload(labels[j], scale)]));
  return { ids, deliveries };
}

/** Target rows [r0, r1) of a micro-batch (a view, not a copy). */
function rowsOfTarget(t: Target, r0: number, r1: number): Target {
  if (t instanceof Int32Array) return t.subarray(r0, r1);
  const row = t.size / t.shape[0];
  return new Tensor(t.data.subarray(r0 * row, r1 * row), [r1 - r0, ...t.shape.slice(1)]);
}
