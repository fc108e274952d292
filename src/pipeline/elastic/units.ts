// The partition units of AutoPipe as runnable modules: a TransformerBlock becomes its attention
// sub-block (x + attn(ln1(x))) and its MLP sub-block (h + mlp(ln2(h))), each wrapping the block's own
// layers (shared, not copied), so a pipeline stage may end between them without cutting a residual.
// A sub-block registers the block's children under their own names, so its parameters named with
// prefix `layers.<block index>` are exactly the full model's state-dict names.
import { add } from "../../autograd/index.js";
import type { Tensor } from "../../tensor/tensor.js";
import { Module } from "../../nn/module.js";
import { TransformerBlock } from "../../nn/transformer.js";
import type { PipelineModel } from "../runtime/model-source.js";
import { unitsFromLayers, type PipeUnit } from "../freeze/autopipe.js";

class AttentionSubBlock extends Module {
  constructor(readonly block: TransformerBlock) {
    super();
    this.registerModule("ln1", block.ln1);
    this.registerModule("attn", block.attn);
  }
  forward(x: Tensor): Tensor { return add(x, this.block.attn.forward(this.block.ln1.forward(x))); }
}

class MlpSubBlock extends Module {
  constructor(readonly block: TransformerBlock) {
    super();
    this.registerModule("ln2", block.ln2);
    this.registerModule("mlp", block.mlp);
  }
  forward(h: Tensor): Tensor { return add(h, this.block.mlp.forward(this.block.ln2.forward(h))); }
}

export interface RunnableUnit {
  unit: PipeUnit;
  module: Module;
}

/** AutoPipe's units of `model` with the module that runs each (sub-blocks for transformer blocks). */
export function runnableUnits(model: PipelineModel): RunnableUnit[] {
  const units = unitsFromLayers(model.units);
  return units.map((u) => {
    const m = model.units[u.layer];
    if (m instanceof TransformerBlock) return { unit: u, module: u.name.endsWith(".attn") ? new AttentionSubBlock(m) : new MlpSubBlock(m) };
    return { unit: u, module: m };
  });
}

/** Sets requiresGrad off on the frozen prefix's parameters and on for the rest. */
export function applyFreeze(model: PipelineModel, frozenLayers: number): void {
  model.units.forEach((m, i) => { for (const p of m.parameters()) p.requiresGrad = i >= frozenLayers; });
}
