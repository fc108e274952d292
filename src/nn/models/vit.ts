// Vision transformer: patch embedding, pre-norm blocks, LayerNorm, mean over tokens, linear head.
// Mean pooling instead of a cls token keeps every unit a plain Tensor -> Tensor over [B, N, D].
import { add, flatten, mean, transpose } from "../../autograd/index.js";
import { Tensor } from "../../tensor/tensor.js";
import type { Rng } from "../../tensor/random.js";
import { fmt } from "../../tensor/shape.js";
import { Module } from "../module.js";
import { Conv2d } from "../conv.js";
import { LayerNorm } from "../norm.js";
import { Linear } from "../linear.js";
import { normal } from "../init.js";
import { TransformerBlock } from "../transformer.js";
import type { ResolvedSpec } from "./spec.js";

/** [B, C, H, W] -> tokens [B, (H/p)(W/p), D]: `proj` (Conv2d k = s = p) plus `pos_embed` [1, N, D]. */
export class PatchEmbedding extends Module {
  readonly proj: Conv2d;
  readonly posEmbed: Tensor;
  readonly tokens: number;

  constructor(readonly image: number, readonly inChannels: number, readonly patch: number, readonly dim: number, rng: Rng) {
    super();
    this.tokens = (image / patch) ** 2;
    // Own parameters register before children, matching torch's state-dict order for this module.
    this.posEmbed = this.registerParameter("pos_embed", normal([1, this.tokens, dim], rng, 0.02));
    this.proj = this.registerModule("proj", new Conv2d(inChannels, dim, patch, rng, { stride: patch }));
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels || x.shape[2] !== this.image || x.shape[3] !== this.image) {
      throw new Error(`PatchEmbedding: input ${fmt(x.shape)} must be [B, ${this.inChannels}, ${this.image}, ${this.image}]`);
    }
    const tokens = transpose(flatten(this.proj.forward(x), 2), 1, 2); // [B, N, D]
    return add(tokens, this.posEmbed);
  }
}

/** [B, N, D] -> [B, D], averaging over tokens. */
export class TokenMean extends Module {
  forward(x: Tensor): Tensor { return mean(x, 1); }
}

/** The units in order, each made (and its weights drawn from `rng`) when it is reached. */
export function* vitUnits(spec: ResolvedSpec<"vit">, rng: Rng): Generator<Module> {
  yield new PatchEmbedding(spec.image, spec.inChannels, spec.patch, spec.dim, rng);
  for (let i = 0; i < spec.depth; i++) yield new TransformerBlock(spec.dim, spec.heads, rng);
  yield new LayerNorm(spec.dim);
  yield new TokenMean();
  yield new Linear(spec.dim, spec.classes, rng);
}
