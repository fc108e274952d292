// Character-level GPT: token + position embedding, causal pre-norm blocks, LayerNorm, head -> [B, T, vocab].
import { add } from "../../autograd/index.js";
import { Tensor } from "../../tensor/tensor.js";
import type { Rng } from "../../tensor/random.js";
import { fmt } from "../../tensor/shape.js";
import { Module } from "../module.js";
import { Embedding } from "../embedding.js";
import { LayerNorm } from "../norm.js";
import { Linear } from "../linear.js";
import { TransformerBlock } from "../transformer.js";
import type { ResolvedSpec } from "./spec.js";

/** Token ids [B, T] (integer values as floats) -> tok(ids) + pos(0..T-1), [B, T, D]. */
export class TokenPositionEmbedding extends Module {
  readonly tok: Embedding;
  readonly pos: Embedding;
  /** 0..T-1, kept while T stays the same (one array: a device backend uploads it once). */
  private positions: Int32Array | null = null;

  constructor(readonly vocab: number, readonly context: number, readonly dim: number, rng: Rng) {
    super();
    this.tok = this.registerModule("tok", new Embedding(vocab, dim, rng));
    this.pos = this.registerModule("pos", new Embedding(context, dim, rng));
  }

  forward(ids: Tensor): Tensor {
    if (ids.rank !== 2 || ids.shape[1] > this.context || ids.shape[1] === 0) {
      throw new Error(`TokenPositionEmbedding: ids ${fmt(ids.shape)} must be [B, T] with 1 <= T <= context ${this.context}`);
    }
    const t = ids.shape[1];
    if (!this.positions || this.positions.length !== t) this.positions = Int32Array.from({ length: t }, (_, i) => i);
    return add(this.tok.forward(ids), this.pos.forward(this.positions)); // [B, T, D] + [T, D]
  }
}

/** The units in order, each made (and its weights drawn from `rng`) when it is reached. */
export function* gptUnits(spec: ResolvedSpec<"gpt">, rng: Rng): Generator<Module> {
  yield new TokenPositionEmbedding(spec.vocab, spec.context, spec.dim, rng);
  for (let i = 0; i < spec.depth; i++) yield new TransformerBlock(spec.dim, spec.heads, rng, { causal: true });
  yield new LayerNorm(spec.dim);
  yield new Linear(spec.dim, spec.vocab, rng);
}
