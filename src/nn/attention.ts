// Multi-head self-attention over [B, T, D]: one fused qkv projection (weight [3D, D], rows q|k|v),
// heads split by reshape/permute, softmax(q k^T / sqrt(d_head)) v, then an output projection.
import { causalMask, matmul, mul, permute, reshape, slice, softmax } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../tensor/random.js";
import { fmt } from "../tensor/shape.js";
import { Module } from "./module.js";
import { Linear } from "./linear.js";
import { checkPositiveInt } from "./validate.js";

export interface AttentionOptions { causal?: boolean }

export class MultiHeadAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly headDim: number;
  readonly causal: boolean;

  constructor(readonly dim: number, readonly heads: number, rng: Rng, options: AttentionOptions = {}) {
    super();
    checkPositiveInt("MultiHeadAttention dim", dim);
    checkPositiveInt("MultiHeadAttention heads", heads);
    if (dim % heads !== 0) throw new Error(`MultiHeadAttention: dim ${dim} must be divisible by heads ${heads}`);
    this.headDim = dim / heads;
    this.causal = options.causal ?? false;
    this.qkv = this.registerModule("qkv", new Linear(dim, 3 * dim, rng));
    this.proj = this.registerModule("proj", new Linear(dim, dim, rng));
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 3 || x.shape[2] !== this.dim) {
      throw new Error(`MultiHeadAttention(dim ${this.dim}): input ${fmt(x.shape)} must be [B, T, ${this.dim}]`);
    }
    const [b, t] = x.shape;
    // [B, T, 3D] -> [B, T, 3, H, dh] -> [3, B, H, T, dh]: one permute, then q, k, v are contiguous blocks.
    const qkv = permute(reshape(this.qkv.forward(x), [b, t, 3, this.heads, this.headDim]), [2, 0, 3, 1, 4]);
    const part = (i: number): Tensor => reshape(slice(qkv, 0, i, i + 1), [b, this.heads, t, this.headDim]);
    const q = part(0), k = part(1), v = part(2);
    let scores = mul(matmul(q, k, { transB: true }), 1 / Math.sqrt(this.headDim)); // [B, H, T, T]
    if (this.causal) scores = causalMask(scores);
    const ctx = matmul(softmax(scores, -1), v); // [B, H, T, dh]
    return this.proj.forward(reshape(permute(ctx, [0, 2, 1, 3]), [b, t, this.dim]));
  }
}

