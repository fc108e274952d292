// PipeTransformer's elastic trainer: per step, the per-layer gradient norms feed the
// freeze policy; at each freeze check the frozen prefix grows, AutoPipe re-balances (frozen units
// costed 1/6) and may halve the pipeline, AutoDP turns freed workers into replicas, AutoCache serves
// the frozen prefix's outputs once >= 3 layers are frozen, and the micro-batch count is re-picked.
// Every transition collects the state (weights, optimizer state) from the old layout's workers and
// starts the new layout's workers with it: float32 copies, so moves are bit-exact. Frozen
// parameters leave the optimizer; their optimizer state is kept here (for checkpoints) unchanged.
//
// With the cache on, the cached prefix costs nothing, so the active units alone are re-balanced over
// the S stages AutoPipe chose (balanceByCost on their parameter counts); on batches whose samples are
// not all cached yet, each replica's stage 0 first runs the prefix (no graph) on its rows, on its
// worker (the runtime's input hook), and the outputs come back to fill the cache. Evaluation and
// prediction run the prefix on stage 0's workers too (the hook again, in eval mode).
//
// Each replica trains on its rows of every micro-batch (the runtime's data-parallel split), so the
// cache holds the prefix's outputs of exactly those row groups: a product's kernel depends on its row
// count. A resumed run refills the cache here, on the same row groups (recomputePrefix), with the
// same bits.
import { noGrad } from "../../autograd/engine.js";
import { mergeTensors, splitLabels, splitTensor } from "../../data/microbatch.js";
import { partOf } from "../../transport/reduce.js";
import { inputShape, type ModelSpec } from "../../nn/models/spec.js";
import type { OptimizerState } from "../../optim/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { balanceByCost, rangesOf } from "../partition.js";
import {
  ActivationCache, AutoPipe, FreezePolicy, frozenUnitCount, type FreezeOptions, type FreezePolicyState, type PipeUnit, type Transition,
} from "../freeze/index.js";
import type { OptimizerConfig } from "../runtime/setup.js";
import { loadModelSource, type ModelSource, type PipelineModel } from "../runtime/model-source.js";
import type { EvalBatches, StepResult } from "../runtime/executor.js";
import type { MicrobatchMetrics } from "../stage.js";
import { combineOptimizerStates, phaseSetup, type PhaseExecutor, type PhaseLayout } from "./phase.js";
import { ThreadsExecutor } from "../runtime/threads.js";
import { applyFreeze, runnableUnits } from "./units.js";

export const DEFAULT_CACHE_BYTES = 1024 ** 3;

export interface ElasticConfig {
  /** A built-in model, initialised with `seed` (or see `source`). */
  spec?: ModelSpec;
  seed: number;
  /** The model as a module source (a user's layer list; its transformer blocks split as the built-ins'); overrides spec. */
  source?: Extract<ModelSource, { kind: "module" }>;
  /** One input sample's shape, which sizes the activation cache (a built-in spec gives its own). */
  sampleShape?: number[];
  optimizer: OptimizerConfig;
  /** Worker threads (cores); the starting pipeline has `stages` stages x workers/stages replicas. */
  workers: number;
  stages?: number;
  /** Mini-batch size over all replicas. */
  batch: number;
  /** null: no freezing (the baseline). */
  freeze: FreezeOptions | null;
  /** AutoPipe + AutoDP (re-partition, shrink, replicas); off = keep the starting layout. */
  elastic: boolean;
  /** AutoCache. */
  cache: boolean;
  /** Training samples (cache keys 0..samples-1). */
  samples: number;
  /** Cache bound in bytes (default DEFAULT_CACHE_BYTES, 1 GiB). */
  cacheBytes?: number;
  microbatchesPerStage?: number;
  log?: (m: string) => void;
  /** Each layout's executor: worker threads (default) or one MPI rank per worker (mpi-phase.ts). */
  executor?: "threads" | "processes";
}

export interface ElasticStepResult {
  loss: number;
  /** Seconds inside actions per stage, summed over replicas (stage 0's with the prefix run for the cache). */
  stageBusy: number[];
  /** Squared gradient norm per freeze layer (reduced gradients, one replica). */
  gradSq: Map<number, number>;
  cached: boolean;
}

/**
 * The freeze state a checkpoint needs to continue (plain JSON): the policy's state and the freezes
 * done so far (AutoPipe is replayed through them, so the layout follows from them and the worker
 * count). The activation cache is not saved: it is refilled, with the same bits, on the next epoch.
 */
export interface ElasticFreezeState {
  policy: FreezePolicyState | null;
  /** Each freeze: the epoch it happened after and the frozen layer count it moved to. */
  freezes: { epoch: number; frozen: number }[];
}

/** Where a resumed trainer continues: the saved freeze state and the freeze check still due, if any. */
export interface ElasticResume {
  freeze: ElasticFreezeState;
  /** Run the freeze check of the end of this (1-based) epoch before starting (checkpoints are taken before it). */
  pendingCheck?: number;
}

export class ElasticTrainer {
  readonly units: PipeUnit[];
  readonly autopipe: AutoPipe;
  readonly policy: FreezePolicy | null;
  readonly cache: ActivationCache | null;
  readonly order: string[];
  private phase: PhaseExecutor | null = null;
  /** AutoPipe's current transition, and the layout that runs it. */
  transition: Transition;
  layout: PhaseLayout;
  /** Parameter and buffer values in the main model are current (no phase trained since the last sync). */
  private synced = true;
  /** Freezes done (for checkpoints: AutoPipe's state follows from them). */
  private readonly freezes: { epoch: number; frozen: number }[] = [];

  private constructor(readonly cfg: ElasticConfig, readonly model: PipelineModel, private optState: OptimizerState | null) {
    this.units = runnableUnits(model).map((u) => u.unit);
    this.order = model.namedParameters().map(([n]) => n);
    const stages = cfg.stages ?? cfg.workers;
    this.autopipe = new AutoPipe(this.units, {
      workers: cfg.workers, stages, batch: cfg.batch, microbatchesPerStage: cfg.microbatchesPerStage, elastic: cfg.elastic,
    });
    this.policy = cfg.freeze ? new FreezePolicy(model.units.length, cfg.freeze) : null;
    this.cache = cfg.freeze && cfg.cache ? new ActivationCache({ maxBytes: cfg.cacheBytes ?? DEFAULT_CACHE_BYTES, boundFlag: "--cache-mb" }) : null;
    this.transition = this.autopipe.initial();
    this.layout = this.layoutOf(this.transition);
  }

  /**
   * A trainer whose model starts from `state` (default: as its source builds it) and `optimizerState`;
   * with `resume`, also from a checkpoint's freeze state (layout replayed, pending check run first).
   */
  static async create(cfg: ElasticConfig, state?: ReadonlyMap<string, Tensor>, optimizerState?: OptimizerState | null,
    resume?: ElasticResume): Promise<ElasticTrainer> {
    const model = await loadModelSource(modelSource(cfg));
    if (state) model.loadStateDict(new Map([...state].map(([k, t]) => [k, t.clone()])));
    model.train();
    const t = new ElasticTrainer(cfg, model, optimizerState ?? null);
    if (resume) t.restore(resume.freeze);
    // The pending check may move to a new layout, which starts the workers; otherwise start them here.
    const moved = resume?.pendingCheck !== undefined ? await t.endEpoch(resume.pendingCheck) : null;
    if (!moved) await t.start();
    return t;
  }

  /** The freeze state to checkpoint (see ElasticFreezeState). */
  freezeState(): ElasticFreezeState {
    return { policy: this.policy?.snapshot() ?? null, freezes: this.freezes.map((f) => ({ ...f })) };
  }

  /** Before the first phase starts: the policy's state, and AutoPipe and AutoCache replayed through the freezes. */
  private restore(s: ElasticFreezeState): void {
    if (s.policy) {
      if (!this.policy) throw new Error("the checkpoint holds a freeze policy's state, but this run trains without freezing");
      this.policy.restore(s.policy);
    }
    for (const f of s.freezes) {
      this.transition = this.autopipe.onFreeze(f.epoch, f.frozen);
      this.freezes.push({ ...f });
    }
    this.layout = this.layoutOf(this.transition);
    if (this.cache && s.freezes.length) {
      // Empty, refilled on the next epoch's batches.
      this.cache.update(this.transition.frozenLayers, this.cfg.samples, this.layout.prefix > 0 ? this.prefixShape(this.layout.prefix) : [1]);
    }
  }

  get frozenLayers(): number { return this.layout.frozenLayers; }

  /** The phase layout of an AutoPipe transition, with the cached prefix taken out when the cache is on. */
  private layoutOf(t: Transition): PhaseLayout {
    const base: PhaseLayout = {
      frozenLayers: t.frozenLayers, stages: t.stages, replicas: t.replicas, microbatches: t.microbatches, prefix: 0,
      ranges: t.partition.ranges.map(([a, b]) => [a, b] as [number, number]),
    };
    if (!this.cache || t.frozenLayers < this.cache.minFrozen) return base;
    const prefix = frozenUnitCount(this.units, t.frozenLayers);
    const active = this.units.slice(prefix).map((u) => u.params);
    const S = Math.min(t.stages, active.length);
    const ranges = rangesOf(balanceByCost(active, S)).map(([a, b]) => [a + prefix, b + prefix] as [number, number]);
    return { ...base, stages: S, prefix, ranges };
  }

  private async start(): Promise<void> {
    applyFreeze(this.model, this.layout.frozenLayers);
    const setup = phaseSetup(modelSource(this.cfg), this.cfg.optimizer, this.layout, this.optState), state = this.model.stateDict();
    // The MPI module loads only for MPI ranks (it is optional).
    this.phase = this.cfg.executor === "processes" ? await (await import("./mpi-phase.js")).mpiPhase(this.cfg.workers, setup, state, this.layout.replicas)
      : await ThreadsExecutor.create(setup, state, this.layout.replicas);
  }

  /** Pulls weights and optimizer state from the running phase into the main model / state store. */
  async sync(): Promise<void> {
    if (!this.phase || this.synced) return;
    const state = await this.phase.stateDict();
    this.model.loadStateDict(state, false);
    // Units the cache serves are frozen too: the stages' trainable parameters are the model's.
    const trains = this.model.parameters().some((p) => p.requiresGrad);
    this.optState = combineOptimizerStates(this.optState, trains ? await this.phase.optimizerState(this.order) : null, this.order);
    this.synced = true;
  }

  /**
   * Replaces every parameter and buffer (by the model's names) in the running layout; the optimizer
   * state and the freezes are kept, and the cache, computed with the old weights, is emptied.
   */
  async loadStateDict(state: ReadonlyMap<string, Tensor>): Promise<void> {
    const phase = this.running();
    await this.sync();
    this.model.loadStateDict(new Map([...state].map(([k, t]) => [k, t.clone()])));
    await phase.loadStateDict(this.model.stateDict());
    if (this.cache?.active) {
      this.cache.clear();
      this.cache.update(this.layout.frozenLayers, this.cfg.samples, this.prefixShape(this.layout.prefix));
    }
  }

  /** Optimizer state of every parameter ever trained (frozen ones keep the state they froze with). */
  async optimizerState(): Promise<OptimizerState | null> { await this.sync(); return this.optState; }

  /** Switches to `layout` (state moved exactly). Tests use it to force a transition. */
  async moveTo(layout: PhaseLayout): Promise<void> {
    await this.sync();
    await this.phase?.close();
    this.phase = null;
    this.layout = layout;
    await this.start();
  }

  /** The running layout's executor (none once closed). */
  private running(): PhaseExecutor {
    if (!this.phase) throw new Error("elastic trainer is closed");
    return this.phase;
  }

  /** Whether a mini-batch of n examples can be split over the replicas and micro-batches. */
  fits(n: number): boolean { return Math.floor(n / this.layout.replicas) >= this.layout.microbatches; }

  /** One optimizer step; `indices` = dataset indices of the samples (for the cache). */
  async step(x: Tensor, y: Int32Array, indices: ArrayLike<number> | null, lrFactor: number): Promise<ElasticStepResult> {
    const phase = this.running();
    let input = x, cached = false, fill = false;
    const idx = indices ? Array.from(indices) : null;
    if (this.cache?.active && this.layout.prefix > 0) {
      if (!idx) throw new Error("AutoCache needs the samples' dataset indices");
      const hit = this.cache.lookup(idx);
      if (hit) { input = hit; cached = true; } else fill = true;
    }
    this.synced = false;
    const { microbatches: M, replicas: R } = this.layout;
    const r = await phase.step({ inputs: splitTensor(input, M), labels: splitLabels(y, M, y.length / x.shape[0]), scale: 1 / y.length,
      ...(fill ? { prepare: true } : {}) }, lrFactor);
    if (fill) this.cache!.put(idx!, this.preparedInput(r.prepared));
    const gradSq = new Map<number, number>();
    for (const [l, v] of r.gradSquares ?? []) gradSq.set(l, (gradSq.get(l) ?? 0) + v);
    if (this.policy) this.policy.recordGradNorms(Array.from({ length: this.model.units.length }, (_, l) => Math.sqrt(gradSq.get(l) ?? 0)));
    // The replicas mirror replica 0's work (its prefix run for the cache counts as stage 0's).
    const stageBusy = r.busy.map((b) => b * R);
    return { loss: r.loss, stageBusy, gradSq, cached };
  }

  /** The model's outputs for x through the stages (eval mode, no gradient). */
  async predict(x: Tensor): Promise<Tensor> {
    return mergeTensors(await this.running().predict(splitTensor(x, Math.min(this.layout.microbatches, x.shape[0]))));
  }

  /** Mean loss, correct predictions and count of (x, y) through the stages (eval mode, no gradient). */
  evaluate(x: Tensor, y: Int32Array): Promise<MicrobatchMetrics> {
    const M = Math.min(this.layout.microbatches, x.shape[0]);
    return this.running().evaluate({ inputs: splitTensor(x, M), labels: splitLabels(y, M, y.length / x.shape[0]) }, 1 / y.length);
  }

  /** Summed loss, correct predictions and count over the batches, each one micro-batch through the stages. */
  evaluateBatches(b: EvalBatches): Promise<MicrobatchMetrics> { return this.running().evaluate(b); }

  /**
   * End of epoch `epoch` (1-based): the freeze check on interval boundaries; on a change, AutoPipe,
   * AutoDP, AutoCache and the move to the new layout. Returns the new transition, or null.
   */
  async endEpoch(epoch: number): Promise<Transition | null> {
    if (!this.policy) return null;
    const d = this.policy.endEpoch(epoch);
    if (!d || d.frozen === this.transition.frozenLayers) return null;
    return this.freezeTo(epoch, d.frozen);
  }

  /** Freezes the first `frozen` layers now and moves to AutoPipe's layout for it. */
  async freezeTo(epoch: number, frozen: number): Promise<Transition> {
    this.transition = this.autopipe.onFreeze(epoch, frozen);
    this.freezes.push({ epoch, frozen });
    const layout = this.layoutOf(this.transition);
    if (this.cache) {
      const u = this.cache.update(frozen, this.cfg.samples, layout.prefix > 0 ? this.prefixShape(layout.prefix) : [1]);
      this.cfg.log?.(`AutoCache: ${u}${this.cache.active ? ` (frozen prefix of ${layout.prefix} units, ${this.cfg.samples} samples)` : ""}`);
    }
    await this.moveTo(layout);
    this.cfg.log?.(formatLayout(epoch, this.transition, layout, this.units));
    return this.transition;
  }

  private prefixShape(prefix: number): number[] {
    const sample = this.cfg.sampleShape ?? (this.cfg.spec && !this.cfg.source ? inputShape(this.cfg.spec, 1).slice(1) : null);
    if (!sample) throw new Error("AutoCache on a model given as a module needs sampleShape (one input sample's shape) to size the cache");
    return this.runPrefix(prefix, Tensor.zeros([1, ...sample])).shape.slice(1);
  }

  /**
   * The epoch (0-based) since whose start the cache has been filling: the one after the last freeze;
   * null when the cache is off or inactive.
   */
  get cacheFillingSince(): number | null {
    const last = this.freezes.at(-1);
    return this.cache?.active && this.layout.prefix > 0 && last ? last.epoch : null;
  }

  /**
   * Rebuilds the cache a resumed run lost, by replaying the fills of the epochs since
   * `cacheFillingSince` on their own batches: a product's rounding can depend on a row's place in its
   * batch (AVX2 kernels do), so only the same batches and micro-batches give the same bits as the
   * uninterrupted run, whose later epochs read what those fills stored.
   */
  refillCache(batches: Iterable<{ x: Tensor; idx: readonly number[] }>): void {
    if (!this.cache?.active) return;
    for (const b of batches) if (!this.cache.lookup(b.idx)) this.cache.put(b.idx, this.recomputePrefix(b.x));
  }

  /**
   * The cached prefix's outputs for x (no graph), replica by replica of each micro-batch: the row
   * groups stage 0 would run them on (a product's kernel depends on its row count, so the whole
   * batch at once need not round the same).
   */
  recomputePrefix(x: Tensor): Tensor {
    const R = this.layout.replicas;
    const parts = splitTensor(x, this.layout.microbatches).flatMap((mb) => Array.from({ length: R }, (_, r) => {
      const [a, b] = partOf(mb.shape[0], r, R), row = mb.size / mb.shape[0];
      return new Tensor(mb.data.slice(a * row, b * row), [b - a, ...mb.shape.slice(1)]);
    }));
    return mergeTensors(parts.map((p) => this.runPrefix(this.layout.prefix, p)));
  }

  /** The whole batch's prefix outputs from stage 0's workers (micro-batch by micro-batch, each replica's rows in order). */
  private preparedInput(prepared: StepResult["prepared"]): Tensor {
    const want = this.layout.microbatches * this.layout.replicas;
    if (prepared?.length !== want) throw new Error(`elastic trainer: stage 0 prepared ${prepared?.length ?? 0} input part(s) for the cache, expected ${want}`);
    return mergeTensors(prepared.map((p) => new Tensor(p.data, p.shape)));
  }

  /** Units [0, prefix) on x, without a graph. */
  private runPrefix(prefix: number, x: Tensor): Tensor {
    return noGrad(() => runnableUnits(this.model).slice(0, prefix).reduce((h, u) => u.module.forward(h), x));
  }

  async close(): Promise<void> {
    await this.phase?.close();
    this.phase = null;
  }
}

/** The run's model source: `source`, else the built-in spec and seed. */
function modelSource(cfg: ElasticConfig): ModelSource {
  if (cfg.source) return cfg.source;
  if (!cfg.spec) throw new Error("elastic trainer: give a built-in spec or a module source");
  return { kind: "builtin", spec: cfg.spec, seed: cfg.seed };
}

/** One line per transition: frozen layers, pipeline length, replicas, micro-batches, partition. */
export function formatLayout(epoch: number, t: Transition, l: PhaseLayout, units: readonly PipeUnit[]): string {
  const parts = l.ranges.map(([a, b]) => (b - a === 1 ? units[a].name : `${units[a].name}..${units[b - 1].name}`));
  const n = (k: number, one: string): string => `${k} ${one}${k === 1 ? "" : "s"}`;
  return `transition after epoch ${epoch}: frozen ${l.frozenLayers}/${t.layers} layers, pipeline ${n(l.stages, "stage")} x ` +
    `${n(l.replicas, "replica")}, ${l.microbatches} micro-batch${l.microbatches === 1 ? "" : "es"}, partition [${parts.join(" | ")}]` +
    (l.prefix ? `, cached prefix ${units[0].name}..${units[l.prefix - 1].name}` : "");
}
