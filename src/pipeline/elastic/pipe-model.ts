// The model an elastic layout's workers build (a module model source, so worker threads and MPI ranks
// import it like a user's): the run's model (a built-in or a user's layer list) with its first
// `frozenLayers` layers frozen (no gradients, out of the optimizer), cut into AutoPipe's units
// (transformer blocks as their attention and MLP sub-blocks), less the first `prefix` units when
// the activation cache serves them. Those stay in the model (every worker loads the whole state):
// stage 0's worker runs them as its input hook on the batches the cache has not seen yet.
import { noGrad } from "../../autograd/engine.js";
import { Module } from "../../nn/module.js";
import type { Tensor } from "../../tensor/tensor.js";
import { loadModelSource, type ModelSource, type PipelineModel } from "../runtime/model-source.js";
import { applyFreeze, runnableUnits } from "./units.js";

export interface PipeModelArgs {
  source: ModelSource;
  frozenLayers: number;
  /** Units [0, prefix) are left out: their outputs come from the activation cache. */
  prefix: number;
}

/** The model's parameters and buffers under their own names, its pipeline units AutoPipe's. */
export class ElasticPipeModel extends Module implements PipelineModel {
  readonly unitPrefix: string;
  readonly units: readonly Module[];
  /** A sub-block keeps its block's index, so its state-dict names are the model's. */
  readonly unitIndex: readonly number[];
  private readonly prefixUnits: readonly Module[];

  constructor(model: PipelineModel, prefix: number) {
    super();
    for (const [n, m] of model.namedChildren()) this.registerModule(n, m);
    this.unitPrefix = model.unitPrefix;
    const all = runnableUnits(model);
    this.units = all.slice(prefix).map((u) => u.module);
    this.unitIndex = all.slice(prefix).map((u) => u.unit.layer);
    this.prefixUnits = all.slice(0, prefix).map((u) => u.module);
  }

  forward(x: Tensor): Tensor { return this.units.reduce((h, u) => u.forward(h), x); }

  /** The cached prefix's outputs for x (no graph; eval mode for evaluation), as the trainer computes them for its cache. */
  prepareInput(x: Tensor, training: boolean): Tensor {
    for (const u of this.prefixUnits) u.train(training);
    return noGrad(() => this.prefixUnits.reduce((h, u) => u.forward(h), x));
  }
}

/** The module source's factory: every parameter is loaded from the trainer's state right after. */
export default async function elasticPipeModel(a: PipeModelArgs): Promise<ElasticPipeModel> {
  const model = await loadModelSource(a.source, { initialise: false });
  applyFreeze(model, a.frozenLayers);
  return new ElasticPipeModel(model, a.prefix);
}
