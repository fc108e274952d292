// Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)) with mlp = D -> 4D -> GELU -> D.
import { add } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../tensor/random.js";
import { Module, Sequential } from "./module.js";
import { LayerNorm } from "./norm.js";
import { Linear } from "./linear.js";
import { GELU } from "./activation.js";
import { MultiHeadAttention } from "./attention.js";

export interface TransformerBlockOptions { causal?: boolean; mlpRatio?: number }

export class TransformerBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln2: LayerNorm;
  /** Named "mlp.0" (fc in) and "mlp.2" (fc out) like an nn.Sequential in torch. */
  readonly mlp: Sequential;

  constructor(readonly dim: number, readonly heads: number, rng: Rng, options: TransformerBlockOptions = {}) {
    super();
    const hidden = dim * (options.mlpRatio ?? 4);
    this.ln1 = this.registerModule("ln1", new LayerNorm(dim));
    this.attn = this.registerModule("attn", new MultiHeadAttention(dim, heads, rng, { causal: options.causal }));
    this.ln2 = this.registerModule("ln2", new LayerNorm(dim));
    this.mlp = this.registerModule("mlp", new Sequential([new Linear(dim, hidden, rng), new GELU(), new Linear(hidden, dim, rng)]));
  }

  forward(x: Tensor): Tensor {
    const h = add(x, this.attn.forward(this.ln1.forward(x)));
    return add(h, this.mlp.forward(this.ln2.forward(h)));
  }
}
