// AutoPipe and AutoDP (PipeTransformer): after each freeze, re-balance the partition
// units with frozen units costed at a fraction, halve the pipeline while the shorter one is no worse
// than the starting one, give freed workers to data-parallel replicas, and re-pick micro-batches.
//
// Units: a transformer block is two units, its attention sub-block (ln1 + attn, with its residual
// add) and its MLP sub-block (ln2 + mlp, with its residual add); a cut between them cuts no residual
// connection. Every other top-level child of `model.layers` is one unit. A unit's freeze layer is the
// index of its top-level child, so the freeze policy's L is the child count.
//
// Shrink rule: with M_0 the most expensive part of the balanced partition at the start (nothing
// frozen, S_0 stages), S -> S/2 while S is even and the balanced partition of the current costs
// into S/2 parts has its most expensive part <= M_0. Costs only fall as layers freeze, so the
// pipeline never grows back.
//
// Micro-batch rule: M = microbatchesPerStage * S (default 4S, GPipe's "bubble negligible when
// M >= 4S"), replaced by the largest divisor of the smallest replica shard that is <= that target,
// so micro-batches are equal-sized; if that divisor is below S (a bubble worse than one micro-batch
// per stage), M = min(target, shard) with unequal sizes (torch.tensor_split rule) instead.
import { balanceByCost, rangesOf } from "../partition.js";
import type { Module } from "../../nn/module.js";
import { TransformerBlock } from "../../nn/transformer.js";
import { numel } from "../../tensor/shape.js";

export interface PipeUnit {
  /** "3.attn", "3.mlp" for block 3's sub-blocks, "0" for a whole top-level child. */
  name: string;
  /** Parameter count (the AutoPipe cost of an active unit). */
  params: number;
  /** Freeze-layer index: the top-level child of model.layers this unit belongs to. */
  layer: number;
}

function countParams(modules: readonly Module[]): number {
  return modules.reduce((t, m) => t + m.parameters().reduce((s, p) => s + numel(p.shape), 0), 0);
}

/**
 * Partition units of a model (`layers` = model.layers children). With `splitBlocks` (default) a
 * TransformerBlock becomes two units (attention, MLP sub-blocks); without, one unit per child, for
 * runtimes that can only cut between top-level children.
 */
export function unitsFromLayers(layers: readonly Module[], options: { splitBlocks?: boolean } = {}): PipeUnit[] {
  const split = options.splitBlocks ?? true;
  const units: PipeUnit[] = [];
  layers.forEach((m, i) => {
    if (split && m instanceof TransformerBlock) {
      units.push({ name: `${i}.attn`, params: countParams([m.ln1, m.attn]), layer: i });
      units.push({ name: `${i}.mlp`, params: countParams([m.ln2, m.mlp]), layer: i });
    } else {
      units.push({ name: `${i}`, params: countParams([m]), layer: i });
    }
  });
  return units;
}

export function checkUnits(units: readonly PipeUnit[]): number {
  if (units.length === 0) throw new Error("AutoPipe: the model has no partition units");
  units.forEach((u, i) => {
    if (!Number.isFinite(u.params) || u.params < 0) throw new Error(`AutoPipe: unit ${i} ('${u.name}') has parameter count ${u.params}; it must be >= 0`);
    const prev = i === 0 ? 0 : units[i - 1].layer;
    if (!Number.isInteger(u.layer) || u.layer < 0 || u.layer < prev || u.layer > prev + 1 || (i === 0 && u.layer !== 0)) {
      throw new Error(`AutoPipe: unit ${i} ('${u.name}') has layer ${u.layer}; layers must start at 0 and rise by at most 1 from unit to unit`);
    }
  });
  return units[units.length - 1].layer + 1;
}

/** Units belonging to the first `frozenLayers` layers (the frozen prefix, and AutoCache's input). */
export function frozenUnitCount(units: readonly PipeUnit[], frozenLayers: number): number {
  let n = 0;
  while (n < units.length && units[n].layer < frozenLayers) n++;
  return n;
}

/** AutoPipe cost per unit: parameter count, times `frozenCostRatio` for units of frozen layers. */
export function unitCosts(units: readonly PipeUnit[], frozenLayers: number, frozenCostRatio = 1 / 6): number[] {
  if (!(frozenCostRatio >= 0 && frozenCostRatio <= 1)) throw new Error(`AutoPipe: frozen cost ratio ${frozenCostRatio} must lie in [0, 1]`);
  return units.map((u) => (u.layer < frozenLayers ? u.params * frozenCostRatio : u.params));
}

/** Most expensive part of the balanced partition of `costs` into `parts`. */
function maxPartCost(costs: readonly number[], parts: number): number {
  const bal = balanceByCost(costs, parts);
  return Math.max(...rangesOf(bal).map(([a, b]) => costs.slice(a, b).reduce((x, y) => x + y, 0)));
}

// Costs are sums of params * 1/6: allow rounding in the comparison with the start.
const noLarger = (a: number, b: number): boolean => a <= b * (1 + 1e-12) + 1e-12;

/** The shrink rule: halve S while S is even and the S/2-part maximum stays <= `startMax`. */
export function shrinkStages(costs: readonly number[], stages: number, startMax: number): number {
  let S = stages;
  while (S % 2 === 0 && noLarger(maxPartCost(costs, S / 2), startMax)) S /= 2;
  return S;
}

/** AutoDP: replicas of an S-stage pipeline on `workers` workers. */
export function autoDP(workers: number, stages: number): number {
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`AutoDP: workers must be a positive integer, got ${workers}`);
  if (!Number.isInteger(stages) || stages < 1 || stages > workers) {
    throw new Error(`AutoDP: pipeline length ${stages} must be an integer in [1, ${workers}] (the worker count)`);
  }
  return Math.floor(workers / stages);
}

/** Shard sizes of a mini-batch over replicas (first batch % R shards get one more example). */
export function replicaShards(batch: number, replicas: number): number[] {
  if (!Number.isInteger(batch) || batch < replicas) throw new Error(`cannot shard a mini-batch of ${batch} over ${replicas} replicas: need at least one example per replica`);
  const base = Math.floor(batch / replicas), extra = batch % replicas;
  return Array.from({ length: replicas }, (_, i) => base + (i < extra ? 1 : 0));
}

/** The micro-batch rule in the header. `shard` = examples per replica per step. */
export function pickMicrobatches(stages: number, shard: number, perStage = 4): number {
  if (!Number.isInteger(perStage) || perStage < 1) throw new Error(`micro-batches per stage must be a positive integer, got ${perStage}`);
  if (!Number.isInteger(shard) || shard < 1) throw new Error(`per-replica batch must be a positive integer, got ${shard}`);
  const target = Math.min(perStage * stages, shard);
  let m = target;
  while (shard % m !== 0) m--;
  return m >= stages ? m : target;
}

export interface AutoPipeConfig {
  /** Workers (cores) available: the starting pipeline's stages times its replicas. */
  workers: number;
  /** Pipeline length S_0 at the start (<= workers). */
  stages: number;
  /** Mini-batch size per optimizer step, over all replicas. */
  batch: number;
  /** Cost of a frozen unit relative to an active one (default 1/6). */
  frozenCostRatio?: number;
  /** Micro-batch target per stage (default 4: M = 4S). */
  microbatchesPerStage?: number;
  /** false: keep the starting partition, length, replicas and micro-batches ("freezing only"). */
  elastic?: boolean;
}

export interface Transition {
  epoch: number;
  frozenLayers: number;
  /** Freeze layers in the model (the policy's L). */
  layers: number;
  stages: number;
  replicas: number;
  microbatches: number;
  partition: {
    /** Units per stage. */
    balance: number[];
    /** [start, end) unit range per stage. */
    ranges: [number, number][];
    /** AutoPipe cost per stage. */
    costs: number[];
    /** First and last unit name per stage. */
    names: [string, string][];
  };
}

/** One line: "epoch 3: frozen 4/8 layers, 1 stage x 2 replicas, 4 micro-batches, partition [0..7.mlp 1.23e+4]". */
export function formatTransition(t: Transition): string {
  const parts = t.partition.ranges.map(([a, b], s) => {
    const [first, last] = t.partition.names[s];
    const span = b - a === 1 ? first : `${first}..${last}`;
    return `${span} ${t.partition.costs[s].toPrecision(3)}`;
  });
  const count = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
  return `epoch ${t.epoch}: frozen ${t.frozenLayers}/${t.layers} layers, ${count(t.stages, "stage", "stages")} x ` +
    `${count(t.replicas, "replica", "replicas")}, ${count(t.microbatches, "micro-batch", "micro-batches")}, partition [${parts.join(" | ")}]`;
}

/** Drives the elastic decisions: `initial()` at the start, `onFreeze(epoch, frozen)` after each freeze. */
export class AutoPipe {
  readonly layers: number;
  readonly frozenCostRatio: number;
  readonly microbatchesPerStage: number;
  readonly elastic: boolean;
  /** Most expensive part at the start (the shrink rule's reference). */
  readonly startMax: number;
  private current: Transition;

  constructor(readonly units: readonly PipeUnit[], readonly config: AutoPipeConfig) {
    this.layers = checkUnits(units);
    autoDP(config.workers, config.stages); // validates workers and stages
    if (config.stages > units.length) throw new Error(`AutoPipe: ${config.stages} stages but only ${units.length} partition units`);
    if (!Number.isInteger(config.batch) || config.batch < config.workers) {
      throw new Error(`AutoPipe: mini-batch ${config.batch} must be an integer >= the worker count ${config.workers} (every replica needs examples)`);
    }
    this.frozenCostRatio = config.frozenCostRatio ?? 1 / 6;
    this.microbatchesPerStage = config.microbatchesPerStage ?? 4;
    this.elastic = config.elastic ?? true;
    const costs = unitCosts(units, 0, this.frozenCostRatio);
    this.startMax = maxPartCost(costs, config.stages);
    this.current = this.plan(0, 0, config.stages);
  }

  /** The starting layout (epoch 0, nothing frozen). */
  initial(): Transition { return this.current; }

  /** The layout in use. */
  get state(): Transition { return this.current; }

  /** Re-plans after the frozen prefix grew to `frozenLayers` at the end of `epoch`. */
  onFreeze(epoch: number, frozenLayers: number): Transition {
    const prev = this.current;
    if (!Number.isInteger(frozenLayers) || frozenLayers < prev.frozenLayers || frozenLayers >= this.layers) {
      throw new Error(`AutoPipe: frozen layer count ${frozenLayers} must be an integer in [${prev.frozenLayers}, ${this.layers - 1}] (freezing never shrinks and keeps the last layer)`);
    }
    if (!this.elastic) {
      this.current = { ...prev, epoch, frozenLayers };
      return this.current;
    }
    const costs = unitCosts(this.units, frozenLayers, this.frozenCostRatio);
    const S = shrinkStages(costs, prev.stages, this.startMax);
    this.current = this.plan(epoch, frozenLayers, S);
    return this.current;
  }

  private plan(epoch: number, frozenLayers: number, stages: number): Transition {
    const costs = unitCosts(this.units, frozenLayers, this.frozenCostRatio);
    const balance = balanceByCost(costs, stages);
    const ranges = rangesOf(balance);
    const replicas = autoDP(this.config.workers, stages);
    const shard = Math.min(...replicaShards(this.config.batch, replicas));
    return {
      epoch, frozenLayers, layers: this.layers, stages, replicas,
      microbatches: pickMicrobatches(stages, shard, this.microbatchesPerStage),
      partition: {
        balance, ranges,
        costs: ranges.map(([a, b]) => costs.slice(a, b).reduce((x, y) => x + y, 0)),
        names: ranges.map(([a, b]) => [this.units[a].name, this.units[b - 1].name]),
      },
    };
  }
}
