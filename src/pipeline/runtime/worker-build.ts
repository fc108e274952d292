// How a worker of any executor starts (a worker thread, an MPI rank): build the model from its
// source, load its share of the state, keep its stages and put an interpreter over its action list.
// Its weights change only through its own STEPs, so it holds them between lists (ownsWeights).
import { createAsyncRuntime, type AsyncRuntime } from "./async-weights.js";
import { WorkerInterpreter, type InterpreterOptions, type Outbox, type PhysicalStage } from "./interpreter.js";
import { InputHook } from "./input-hook.js";
import { ListResults } from "./list-results.js";
import { loadLoss } from "./loss-source.js";
import { loadModelSource, type PipelineModel } from "./model-source.js";
import { buildWorkerStages, sourceOf, type PipelineSetup } from "./setup.js";
import { syntheticDelay } from "./instrumentation.js";
import { loadStageState, loadWorkerState, refuseLoadWithAsync, type WorkerState } from "./worker-state.js";
import { assembleParts, shardShare, splitSends, stagesPlan, tensorParallelWorker, withSequenceParallelSync } from "./tensor-stages.js";
import { shardStateDict, type ShardPlan } from "../../parallel/tp-shard.js";
import type { Tensor } from "../../tensor/tensor.js";
import { hasParallelLayers } from "../../parallel/ptdp-units.js";
import type { SyncCollectives } from "../../transport/types.js";
import { clipOption, countedOnRank, type NormGroup } from "./grad-clip.js";
import { sumOfSquares } from "../../optim/clip.js";

export interface BuiltWorker {
  interp: WorkerInterpreter;
  /** How this rank's parameters are split over its tensor group (empty without tensor parallelism). */
  plan: ShardPlan;
  /** The asynchronous method's state of this worker's stages (null for synchronous schedules). */
  asyncRuntime: AsyncRuntime | null;
  /** setup.gradientNorms: [unit index, squared gradient norm] of the STEPs since the last call (then cleared). */
  takeGradSquares(): [number, number][];
  /** Applied to every input this worker's stage 0 is fed. */
  inputHook: InputHook;
  /** What its lists report (metrics; outputs in prediction). */
  results: ListResults;
  /** Between lists: its weights from `state`, the full model's (a tensor-parallel rank keeps its shard); not with an asynchronous method. */
  load(state: ReadonlyMap<string, Tensor>): void;
}

/**
 * Where a worker's weights come from: its share of the state, loaded into a model built from the
 * setup's source (every parameter is overwritten, so a built-in model skips its random
 * initialisation; only the worker's units stay alive, held by its stages), or a model of this
 * thread whose units the stages train in place (an MPI rank's own copy: no second one).
 */
export type WorkerWeights = { share: Pick<WorkerState, "units" | "entries"> } | { model: PipelineModel };

/**
 * What the executor adds to a worker with replicas (its REDUCE and how an asynchronous one wakes it),
 * with tensor parallelism (the worker's tensor group) and with gradient clipping (the model's ranks).
 */
export type ReplicaHooks = Pick<InterpreterOptions, "reduce" | "wake"> & { tensor?: SyncCollectives; norm?: NormGroup };

/** The model worker `worker` of `setup` runs on `weights` (built over its tensor group where that splits it). */
async function workerModel(setup: PipelineSetup, worker: number, weights: WorkerWeights, tensor: SyncCollectives | undefined): Promise<PipelineModel> {
  const tp = setup.tensorParallel;
  // A user's model is built over the worker's tensor group: its parallel layers come out as shards.
  const userSplit = tp !== undefined && tp.size > 1 && tensor !== undefined && sourceOf(setup).kind === "module";
  if ("model" in weights) {
    // An MPI rank trains its own copy, built whole before its tensor group existed.
    if (userSplit && hasParallelLayers(weights.model.units)) {
      throw new Error(`worker ${worker}: a model of your own tensor-parallel layers is split over tensor ranks on the threads executor only so far`);
    }
    return weights.model;
  }
  const model = await loadModelSource(sourceOf(setup), { initialise: false, ...(userSplit ? { tensor } : {}) });
  loadWorkerState(model, userSplit ? shardShare(model, weights.share, tensor) : weights.share);
  return model;
}

/** Worker `worker` of `setup` on `weights`; it delivers its messages to itself without `outbox`. */
export async function buildWorker(setup: PipelineSetup, worker: number, weights: WorkerWeights, outbox: Outbox,
  replicaHooks: ReplicaHooks = {}): Promise<BuiltWorker> {
  const { tensor, norm, ...hooks } = replicaHooks;
  const tp = setup.tensorParallel;
  let model = await workerModel(setup, worker, weights, tensor);
  const inputHook = new InputHook(model, worker);
  const loss = await loadLoss(setup.loss);
  model.train();
  let assemble: InterpreterOptions["assemble"];
  if (tp && tp.size > 1) {
    if (tensor?.size !== tp.size) throw new Error(`worker ${worker}: tensor parallelism ${tp.size} needs a tensor group of ${tp.size} ranks, got ${tensor?.size ?? "none"}`);
    ({ model, setup } = tensorParallelWorker(model, setup, worker, tensor, tp));
    outbox = splitSends(outbox, worker, tensor);
    assemble = assembleParts(tensor);
  }
  let stages = buildWorkerStages(model, setup, worker, loss);
  let beforeClip: (() => void) | undefined;
  if (tp?.sequenceParallel && tensor && tensor.size > 1) ({ stages, syncAll: beforeClip } = withSequenceParallelSync(stages, tensor));
  const asyncRuntime = createAsyncRuntime(stages, setup.async);
  const norms = new Map<number, number>();
  const plan = stagesPlan(stages, model.unitPrefix);
  const results = new ListResults();
  const interp = new WorkerInterpreter({
    worker, schedule: setup.schedule, stages,
    outbox: { ...outbox, send: (to, key, p, transferable) => (to === worker ? interp.deliver(key, p) : outbox.send(to, key, p, transferable)) },
    // The asynchronous method is rebuilt from the setup's JSON, like the model.
    hooks: asyncRuntime?.hooks, actionDelay: syntheticDelay(setup.instrumentation, setup.schedule.chunks),
    onMetrics: results.onMetrics, onOutput: results.onOutput, ownsWeights: true, recordActions: setup.instrumentation?.recordActions === true, assemble, ...hooks,
    ...(setup.gradientNorms ? { beforeOptimizer: (ps: PhysicalStage) => addGradSquares(ps, norms) } : {}),
    ...clipOption(setup, norm, countedOnRank(plan, tensor?.rank ?? 0), beforeClip),
  });
  const takeGradSquares = (): [number, number][] => { const out = [...norms]; norms.clear(); return out; };
  const load = (state: ReadonlyMap<string, Tensor>): void => {
    refuseLoadWithAsync(asyncRuntime);
    interp.abandon();
    loadStageState(interp.stages.values(), tensor && tensor.size > 1 ? shardStateDict(state, plan, tensor.rank, tensor.size) : state);
    inputHook.load(state);
  };
  return { interp, asyncRuntime, plan, takeGradSquares, inputHook, results, load };
}

/** Adds each unit's squared L2 norm of its trainable parameters' gradients to `norms` (by unit index). */
function addGradSquares(ps: PhysicalStage, norms: Map<number, number>): void {
  for (const c of ps.chunks) {
    for (const [u, m] of c.units) {
      for (const p of m.parameters()) if (p.requiresGrad && p.grad) norms.set(u, (norms.get(u) ?? 0) + sumOfSquares([p.grad.data]));
    }
  }
}
