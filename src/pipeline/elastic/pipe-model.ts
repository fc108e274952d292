// The model an elastic layout's workers build (a module model source, so worker threads and MPI ranks
// import it like a user's): the built-in model with its first `frozenLayers` layers frozen (no
// gradients, out of the optimizer), cut into AutoPipe's units (transformer blocks as their attention
// and MLP sub-blocks), less the first `prefix` units when the activation cache serves them.
import { createModel } from "../../nn/models/index.js";
import type { Model } from "../../nn/models/model.js";
import type { ModelSpec } from "../../nn/models/spec.js";
import { withoutInit } from "../../nn/init.js";
import { Module } from "../../nn/module.js";
import type { Tensor } from "../../tensor/tensor.js";
import type { PipelineModel } from "../runtime/model-source.js";
import { applyFreeze, runnableUnits } from "./units.js";

export interface PipeModelArgs {
  spec: ModelSpec;
  seed: number;
  frozenLayers: number;
  /** Units [0, prefix) are left out: their outputs come from the activation cache. */
  prefix: number;
}

/** The full model's parameters and buffers under their names, its pipeline units AutoPipe's. */
export class ElasticPipeModel extends Module implements PipelineModel {
  readonly unitPrefix: string;
  readonly units: readonly Module[];
  /** A sub-block keeps its block's index, so its state-dict names are the full model's. */
  readonly unitIndex: readonly number[];

  constructor(readonly model: Model, prefix: number) {
    super();
    this.registerModule(model.unitPrefix, model.layers);
    this.unitPrefix = model.unitPrefix;
    const units = runnableUnits(model).slice(prefix);
    this.units = units.map((u) => u.module);
    this.unitIndex = units.map((u) => u.unit.layer);
  }

  forward(x: Tensor): Tensor { return this.units.reduce((h, u) => u.forward(h), x); }
}

/** The module source's factory: every parameter is loaded from the trainer's state right after. */
export default function elasticPipeModel(a: PipeModelArgs): ElasticPipeModel {
  const model = withoutInit(() => createModel(a.spec, a.seed));
  applyFreeze(model, a.frozenLayers);
  return new ElasticPipeModel(model, a.prefix);
}
