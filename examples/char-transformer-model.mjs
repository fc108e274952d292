// The language model and loss of example (b), in a module of their own: every worker imports this file
// (and only it) for `build` and `tokenLoss`, so the training script needs no isMainThread guard.
import { Embedding, LayerNorm, Linear, Module, Rng, Tensor, TransformerBlock, crossEntropyLoss, ops } from "pipewright";

export const VOCAB = 256;

/** Token ids [B, T] (as floats) -> token embedding + position embedding, [B, T, D]. */
class Embed extends Module {
  constructor(context, dim, rng) {
    super();
    this.tok = this.registerModule("tok", new Embedding(VOCAB, dim, rng, 0.02));
    this.pos = this.registerModule("pos", new Embedding(context, dim, rng, 0.02));
  }
  forward(ids) {
    const t = ids.shape[1];
    const positions = Tensor.from(Array.from({ length: t }, (_, i) => i), [t]);
    return ops.add(this.tok.forward(ids), this.pos.forward(positions));
  }
}

/** The model as units: embedding, `layers` causal blocks, final norm, head -> [B, T, 256]. */
export function build({ layers = 2, width = 64, heads = 4, context = 32, seed = 0 } = {}) {
  const rng = new Rng(seed);
  const units = [new Embed(context, width, rng)];
  for (let i = 0; i < layers; i++) units.push(new TransformerBlock(width, heads, rng, { causal: true }));
  units.push(new LayerNorm(width), new Linear(width, VOCAB, rng));
  return units;
}

/** Next-byte cross-entropy: logits [B, T, 256] against B*T byte ids, averaged (PyTorch's default). */
export function tokenLoss(logits, targets) {
  return crossEntropyLoss(logits, targets, "mean");
}
