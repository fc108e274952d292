// A worker's stages as tensor-parallel shards (PTD-P): the hooks worker-build.ts applies when the
// setup asks for tensor parallelism. The model's held blocks become tensor-parallel over the
// worker's tensor group (src/parallel/ptdp-units.ts), a resumed optimizer state is cut to this rank's
// shards, each STEP first sums the gradients sequence parallelism leaves partial, and activations and
// gradients cross between stages once per tensor group.
import { Module } from "../../nn/module.js";
import type { PlainOptimizerState } from "../../optim/index.js";
import { checkTensorParallel, shardOptimizerState, syncSequenceParallelGrads, tensorParallelUnits, unitsPlan, type TensorParallelSetup } from "../../parallel/ptdp-units.js";
import { shardStateDict, type ShardPlan } from "../../parallel/tp-shard.js";
import type { Tensor } from "../../tensor/tensor.js";
import { entryTensors, type WorkerState } from "./worker-state.js";
import type { SyncCollectives } from "../../transport/types.js";
import type { Outbox, Payload, PhysicalStage } from "./interpreter.js";
import { allGatherAlongAxis } from "../../parallel/tp-collectives.js";
import { fmt, numel } from "../../tensor/shape.js";
import type { PipelineModel } from "./model-source.js";
import { unitRanges, type PipelineSetup } from "./setup.js";

/** A model's units with some replaced: what buildWorkerStages cuts (never run as a whole). */
class UnitView extends Module implements PipelineModel {
  constructor(readonly units: readonly Module[], readonly unitPrefix: string) { super(); }
  forward(x: Tensor): Tensor { return this.units.reduce((y, u) => u.forward(y), x); }
}

/** Virtual stage of each unit `worker` holds, -1 for the others'. */
function heldStages(setup: PipelineSetup, worker: number, units: number): number[] {
  const S = setup.schedule.stages;
  const out = new Array<number>(units).fill(-1);
  unitRanges(setup.balance).forEach(([a, b], vs) => {
    if (setup.schedule.stageToWorker[vs % S] === worker) for (let u = a; u < b; u++) out[u] = vs;
  });
  return out;
}

const unitName = (prefix: string) => (i: number): string => (prefix ? `${prefix}.${i}` : String(i));

/** Rank `comm.rank` of `worker`'s tensor group: its model view and its setup (optimizer state sharded). */
export function tensorParallelWorker(model: PipelineModel, setup: PipelineSetup, worker: number, comm: SyncCollectives,
  tp: TensorParallelSetup): { model: PipelineModel; setup: PipelineSetup } {
  checkTensorParallel(model.units, tp.size);
  const stageOf = heldStages(setup, worker, model.units.length);
  const units = tensorParallelUnits(model.units, stageOf, comm, tp.sequenceParallel);
  const view = new UnitView(units, model.unitPrefix);
  const plan = unitsPlan(units.flatMap((u, i) => (stageOf[i] >= 0 ? [[i, u] as const] : [])), unitName(model.unitPrefix));
  const optimizerState: PlainOptimizerState | undefined = setup.optimizerState
    && shardOptimizerState(setup.optimizerState, plan, comm.rank, comm.size);
  return { model: view, setup: { ...setup, optimizerState } };
}

/** The shard plan of a worker's stages (names as in the single-device state dict). */
export function stagesPlan(stages: ReadonlyMap<number, PhysicalStage>, prefix: string): ShardPlan {
  return Object.assign({}, ...[...stages.values()].flatMap((ps) => ps.chunks.map((c) => unitsPlan(c.units, unitName(prefix))))) as ShardPlan;
}

/**
 * `stages` whose optimizers first sum the sequence-parallel partial gradients over the tensor group,
 * and `syncAll`, which sums them for every stage ahead of its STEP (gradient clipping needs the
 * whole gradients): that STEP then does not sum them again. Collective over the tensor group.
 */
export function withSequenceParallelSync(stages: Map<number, PhysicalStage>, comm: SyncCollectives): { stages: Map<number, PhysicalStage>; syncAll(): void } {
  const out = new Map<number, PhysicalStage>();
  const synced = new Set<number>();
  const units = new Map([...stages].map(([s, ps]) => [s, ps.chunks.flatMap((c) => c.units.map(([, m]) => m))]));
  const sync = (s: number): void => { if (!synced.has(s)) syncSequenceParallelGrads(units.get(s)!, comm); };
  for (const [s, ps] of stages) {
    const opt = ps.optimizer;
    out.set(s, !opt ? ps : {
      ...ps,
      optimizer: {
        step: () => { sync(s); synced.delete(s); opt.step(); },
        zeroGrad: () => opt.zeroGrad(),
        setLrFactor: (f) => opt.setLrFactor(f),
        stateBytes: () => opt.stateBytes(),
        stateDict: () => opt.stateDict(),
        loadStateDict: (st) => opt.loadStateDict(st),
      },
    });
  }
  const syncAll = (): void => { for (const [s, ps] of stages) if (ps.optimizer) { sync(s); synced.add(s); } };
  return { stages: out, syncAll };
}

/** Tensor-parallel ranks per worker of `setup` (1 without tensor parallelism); checks the schedule. */
export function tensorSize(setup: PipelineSetup): number {
  const T = setup.tensorParallel?.size ?? 1;
  if (!Number.isInteger(T) || T < 1) throw new Error(`tensor parallelism ${T} must be a positive integer`);
  if (T > 1 && (setup.async || setup.schedule.steps > 1)) {
    throw new Error(`--tp ${T} needs a synchronous schedule (gpipe, 1f1b, interleaved, zb-h1), not '${setup.schedule.name}'`);
  }
  return T;
}

/**
 * Megatron's scatter/gather between stages: every rank of a tensor group holds the same activation
 * (and input gradient), so rank r sends only part r of it to rank r of the next group, which gathers
 * the parts (assembleParts) when the action consumes them: T times fewer bytes between stages than
 * every rank sending the whole. A tensor that does not split into T equal parts, and a message to this
 * same worker, go whole.
 */
export function splitSends(outbox: Outbox, worker: number, comm: SyncCollectives): Outbox {
  return {
    send(to, key, p, transferable) {
      if (p.kind !== "tensor" || to === worker || p.data.length % comm.size !== 0) { outbox.send(to, key, p, transferable); return; }
      const part = p.data.length / comm.size;
      outbox.send(to, key, { ...p, data: p.data.slice(comm.rank * part, (comm.rank + 1) * part) }, true);
    },
    ...(outbox.progress ? { progress: () => outbox.progress!() } : {}),
  };
}

/** The whole tensor of a message that carries this rank's part (a whole one is kept as it is). Collective over `comm`. */
export function assembleParts(comm: SyncCollectives): (p: Payload) => Payload {
  return (p) => {
    if (p.kind !== "tensor" || p.data.length === numel(p.shape)) return p;
    if (p.data.length * comm.size !== numel(p.shape)) {
      throw new Error(`a message part of ${p.data.length} values does not make a tensor ${fmt(p.shape)} over ${comm.size} tensor ranks`);
    }
    return { ...p, data: allGatherAlongAxis(comm, p.data, [p.data.length], 0) };
  };
}

/**
 * This rank's part of a worker's share of the dense state, for a model a user built from
 * tensor-parallel layers over the worker's tensor group (each layer already its shard's size).
 */
export function shardShare(model: PipelineModel, share: Pick<WorkerState, "units" | "entries">, comm: SyncCollectives): Pick<WorkerState, "units" | "entries"> {
  const full = entryTensors(share.entries);
  const plan = unitsPlan(model.units.map((u, i) => [i, u] as const), unitName(model.unitPrefix));
  const held: ShardPlan = Object.fromEntries(Object.entries(plan).filter(([k]) => full.has(k)));
  return { units: share.units, entries: [...shardStateDict(full, held, comm.rank, comm.size)].map(([k, t]) => [k, t.data, [...t.shape]]) };
}
