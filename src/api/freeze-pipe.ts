// PipeTransformer freezing as a createPipeline option: the elastic trainer (src/pipeline/elastic/trainer.ts:
// freezing, AutoPipe, AutoDP, AutoCache) runs a freeze check at each pipe.endEpoch(). It trains the built-in
// vit or gpt, or a user's layer list (a module model; its TransformerBlocks split as the vit's), on worker
// threads or, with executor "processes", on MPI ranks (SPMD: every rank makes the same calls with the same
// arguments; each call is collective and returns the same result on every rank; rank 0 alone writes
// files). It picks its own micro-batch count.
import type { ModelSpec } from "../nn/models/spec.js";
import type { OptimizerConfig } from "../optim/factory.js";
import type { FreezeOptions } from "../pipeline/freeze/index.js";
import { ElasticTrainer, type ElasticFreezeState } from "../pipeline/elastic/trainer.js";
import type { Tensor } from "../tensor/tensor.js";
import type { MicrobatchMetrics, Target } from "../pipeline/stage.js";
import { describeValue } from "../util/describe.js";
import type { MiniBatch } from "./engine.js";
import type { BuiltinModel, ModuleModel } from "./options.js";
import type { Pipe } from "./pipe-interface.js";
import { readRunCheckpoint, writeRunCheckpoint } from "./checkpoint-start.js";
import { checkLaunched, endJobOnError, finalizeMpi } from "./spmd.js";

/** The `freeze` option of createPipeline (PipeTransformer). */
export interface FreezeOption {
  /** Freeze policy: alpha (e.g. "1/3"), interval (epochs between checks), criterion (see docs/methods-usage.md, "PipeTransformer"). */
  policy?: FreezeOptions;
  /** AutoPipe re-partitioning + AutoDP replicas (default true). */
  elastic?: boolean;
  /** AutoCache of the frozen prefix's outputs (default false; needs sample indices in pipe.step). */
  cache?: boolean;
  cacheBytes?: number;
  /** Worker threads (default: stages). */
  workers?: number;
  /** Mini-batch size over all replicas. */
  batch: number;
  /** Training samples (cache keys 0..samples-1). */
  samples: number;
  /** One input sample's shape: sizes the cache of a module model (the built-in vit knows its own). */
  sampleShape?: number[];
}

export interface FreezingPipeOptions {
  /** The built-in vit or gpt, or a module exporting a user's layer list (a classifier on class ids). */
  model: { builtin: ModelSpec; seed?: number } | ModuleModel;
  stages: number;
  optimizer: OptimizerConfig;
  freeze: FreezeOption;
  lrSchedule?: (step: number) => number;
  resume?: string;
  /** threads (default): one worker thread per worker; processes: one MPI rank per worker (freeze.workers = ranks). */
  executor?: "threads" | "processes";
}

/** A PipeTransformer pipeline: what {@link createPipeline} returns when given the `freeze` option. */
export class FreezingPipe implements Pipe {
  /** @internal */
  constructor(private readonly trainer: ElasticTrainer, private readonly o: FreezingPipeOptions,
    private stepCount: number, private epochCount: number) {}

  get steps(): number { return this.stepCount; }

  /** The elastic runtime does not count its workers' memory. */
  get memory(): null { return null; }
  /** Epochs ended with endEpoch(). */
  get epochs(): number { return this.epochCount; }
  /** Layers frozen so far. */
  get frozenLayers(): number { return this.trainer.frozenLayers; }

  /** One optimizer step on (x, y class ids); `indices` are the samples' dataset indices (needed with the cache). */
  step(x: Tensor, y: Target, indices?: ArrayLike<number>): Promise<number> {
    return this.spmd(() => this.stepNow(x, y, indices));
  }

  /** One optimizer step per mini-batch, in order (the elastic runtime flushes after every step). */
  run(batches: readonly MiniBatch[]): Promise<number[]> {
    return this.spmd(async () => {
      const losses: number[] = [];
      for (const b of batches) losses.push(await this.stepNow(b.x, b.y));
      return losses;
    });
  }

  private async stepNow(x: Tensor, y: Target, indices?: ArrayLike<number>): Promise<number> {
    const ids = classIds(y, "pipe.step");
    if (!this.trainer.fits(x.shape[0])) throw new Error(`pipe.step: a mini-batch of ${x.shape[0]} does not split over ${this.trainer.layout.replicas} replica(s) x ${this.trainer.layout.microbatches} micro-batches`);
    const r = await this.trainer.step(x, ids, indices ?? null, this.o.lrSchedule ? this.o.lrSchedule(this.stepCount) : 1);
    this.stepCount++;
    return r.loss;
  }

  /** processes: an error on one rank ends the job, naming the rank (src/api/spmd.ts); else thrown as usual. */
  private spmd<T>(body: () => Promise<T>): Promise<T> { return endJobOnError(this.o.executor ?? "threads", body); }

  /** Ends an epoch: runs the freeze check; resolves to the new frozen layer count when it froze more. */
  endEpoch(): Promise<number | null> {
    return this.spmd(async () => {
      this.epochCount++;
      const t = await this.trainer.endEpoch(this.epochCount);
      return t ? t.frozenLayers : null;
    });
  }

  /** The model's output for x (eval mode, no gradient), through the stages. processes: collective. */
  eval(x: Tensor): Promise<Tensor> { return this.spmd(() => this.trainer.predict(x)); }

  /** Mean cross-entropy, correct predictions and count of (x, y), through the stages. processes: collective. */
  evaluate(x: Tensor, y: Target): Promise<MicrobatchMetrics> {
    return this.spmd(async () => this.trainer.evaluate(x, classIds(y, "pipe.evaluate")));
  }

  /** processes: collective. */
  stateDict(): Promise<Map<string, Tensor>> {
    return this.spmd(async () => {
      await this.trainer.sync();
      return new Map([...this.trainer.model.stateDict()].map(([k, t]) => [k, t.clone()]));
    });
  }

  /**
   * Replaces the weights (names and shapes must match) in the running workers; the optimizer state
   * and the freezes so far are kept (the activation cache refills). processes: collective.
   */
  loadStateDict(state: ReadonlyMap<string, Tensor> | Record<string, Tensor>): Promise<void> {
    return this.spmd(() => this.trainer.loadStateDict(state instanceof Map ? state : new Map(Object.entries(state))));
  }

  /** Checkpoint: weights, optimizer state, step, epochs and the freeze state (resume continues the freezes). processes: rank 0 writes. */
  save(path: string): Promise<void> {
    return this.spmd(() => saveElastic(this.trainer, path, {
      step: this.stepCount, epoch: this.epochCount, ...("builtin" in this.o.model ? { modelSpec: this.o.model.builtin } : {}),
      extra: { library: { freeze: this.trainer.freezeState() } },
    }));
  }

  /** Stops the workers. processes: collective; it also finalizes MPI (the process's last pipeline). */
  async close(): Promise<void> {
    await this.trainer.close();
    if (this.o.executor === "processes") await finalizeMpi();
  }
}

/** `y` as class ids: a freezing pipe trains and evaluates a classifier. */
function classIds(y: Target, what: string): Int32Array {
  if (y instanceof Int32Array) return y;
  throw new Error(`${what}: a freezing pipe trains a classifier; y must be an Int32Array of class ids, got ${describeValue(y)}`);
}

/** createPipeline with a `freeze` option lands here. */
export async function createFreezingPipeline(o: FreezingPipeOptions): Promise<FreezingPipe> {
  const f = o.freeze;
  const m = o.model as Partial<BuiltinModel & ModuleModel> | null;
  const isModule = typeof m?.module === "string" || m?.module instanceof URL;
  if (typeof m !== "object" || m === null || (!isModule && m.builtin?.name !== "vit" && m.builtin?.name !== "gpt")) {
    throw new Error("createPipeline: freeze (PipeTransformer) trains the built-in vit or gpt (model {builtin: {name: \"vit\", ...}, seed}) or a module model " +
      "(model {module: new URL(\"./model.js\", import.meta.url), export, args}: a layer list; its TransformerBlocks split as the vit's)");
  }
  if (typeof f.batch !== "number" || typeof f.samples !== "number") throw new Error("createPipeline: freeze needs batch (mini-batch size) and samples (training set size)");
  const ck = o.resume ? readRunCheckpoint(o.resume, { optimizer: "optional" }) : null;
  const saved = (ck?.extra as { library?: { freeze?: ElasticFreezeState } } | undefined)?.library?.freeze;
  if (ck && !saved) throw new Error(`createPipeline: checkpoint ${o.resume} holds no freeze state; it was not written by a freezing pipe`);
  const executor = o.executor ?? "threads";
  if (executor !== "threads" && executor !== "processes") throw new Error(`createPipeline: a freeze pipe runs on threads or processes; executor ${JSON.stringify(executor)} is not supported with freeze`);
  const workers = f.workers ?? o.stages;
  if (executor === "processes") checkLaunched(workers, 1);
  return endJobOnError(executor, async () => new FreezingPipe(await ElasticTrainer.create({
    ...("builtin" in o.model ? { spec: o.model.builtin, seed: o.model.seed ?? 0 }
      : { seed: 0, source: { kind: "module" as const, module: String(o.model.module), export: o.model.export, args: o.model.args } }),
    sampleShape: f.sampleShape, optimizer: o.optimizer, workers, stages: o.stages, executor,
    batch: f.batch, freeze: f.policy ?? {}, elastic: f.elastic ?? true, cache: f.cache ?? false, cacheBytes: f.cacheBytes, samples: f.samples,
  }, ck?.model, ck?.optimizer, saved && { freeze: saved }), o, ck?.step ?? 0, ck?.epoch ?? 0));
}

/**
 * Writes a checkpoint of the trainer's run: its weights, the optimizer state of every parameter ever
 * trained (frozen ones keep theirs: no executor holds them, so the run engine's save cannot), the
 * counters and the caller's extra. processes: collective (a gather), rank 0 writes.
 */
export async function saveElastic(trainer: ElasticTrainer, path: string, meta: { step: number; epoch: number; modelSpec?: object; extra: object }): Promise<void> {
  const optimizer = await trainer.optimizerState(); // syncs the model's weights too
  writeRunCheckpoint(path, { model: trainer.model.stateDict(), optimizer, ...meta });
}
