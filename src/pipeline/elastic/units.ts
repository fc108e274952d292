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

/** One residual half of a TransformerBlock: x + attn(ln1(x)), or h + mlp(ln2(h)). */
class SubBlock extends Module {
  private readonly norm: Module;
  private readonly body: Module;
  constructor(block: TransformerBlock, half: "attn" | "mlp") {
    super();
    this.norm = half === "attn" ? this.registerModule("ln1", block.ln1) : this.registerModule("ln2", block.ln2);
    this.body = half === "attn" ? this.registerModule("attn", block.attn) : this.registerModule("mlp", block.mlp);
  }
  forward(x: Tensor): Tensor { return add(x, this.body.forward(this.norm.forward(x))); }
}

/** AutoPipe's units of `model` with the module that runs each (sub-blocks for transformer blocks). */
export function runnableUnits(model: PipelineModel): { unit: PipeUnit; module: Module }[] {
  const units = unitsFromLayers(model.units);
  return units.map((u) => {
    const m = model.units[u.layer];
    if (m instanceof TransformerBlock) return { unit: u, module: new SubBlock(m, u.name.endsWith(".attn") ? "attn" : "mlp") };
    return { unit: u, module: m };
  });
}

/** Sets requiresGrad off on the frozen prefix's parameters and on for the rest. */
export function applyFreeze(model: PipelineModel, frozenLayers: number): void {
  model.units.forEach((m, i) => { for (const p of m.parameters()) p.requiresGrad = i >= frozenLayers; });
}
