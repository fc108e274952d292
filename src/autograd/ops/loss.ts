// Losses: fused cross-entropy on logits (log-softmax + NLL in one kernel) and mean squared error.
import { getBackend } from "../../backend/index.js";
import { emptyFloat32, Tensor } from "../../tensor/tensor.js";
import { fmt, sameShape } from "../../tensor/shape.js";
import { gradBuffer, record } from "../engine.js";
import { sub, mul } from "./arith.js";
import { mean } from "./reduce.js";
import { checkTensor, toIndices } from "./util.js";

export type Reduction = "mean" | "sum";
const REDUCTIONS: readonly Reduction[] = ["mean", "sum"];

/**
 * Cross-entropy of logits [N, C] (or [..., C], flattened to rows) against class indices, like
 * torch.nn.functional.cross_entropy: "mean" averages over rows, "sum" adds them. Targets are an
 * Int32Array or a Tensor holding integer class ids as floats (one per row).
 */
export function crossEntropy(logits: Tensor, targets: Int32Array | Tensor, reduction: Reduction = "mean"): Tensor {
  checkTensor(logits, "crossEntropy", "logits");
  if (!REDUCTIONS.includes(reduction)) {
    throw new Error(`crossEntropy: reduction '${String(reduction)}' is not one of ${REDUCTIONS.join(", ")}`);
  }
  if (logits.rank < 2) throw new Error(`crossEntropy: logits ${fmt(logits.shape)} must be [N, C]`);
  const cols = logits.shape[logits.rank - 1];
  const rows = cols === 0 ? 0 : logits.size / cols;
  const tShape = targets instanceof Tensor ? targets.shape : [targets.length];
  const count = targets instanceof Tensor ? targets.size : targets.length;
  if (count !== rows) {
    throw new Error(`crossEntropy: logits ${fmt(logits.shape)} and targets ${fmt(tShape)}: need one target per row (${rows})`);
  }
  const ids = toIndices(targets instanceof Tensor ? targets.data : targets, cols, "crossEntropy", "target");
  const be = getBackend();
  const logProbs = emptyFloat32(logits.size);
  const total = be.crossEntropy(logits.data, ids, rows, cols, logProbs);
  const scale = reduction === "mean" ? 1 / rows : 1;
  const out = Tensor.scalar(total * scale);
  return record(out, "crossEntropy", [logits], (g) => {
    const dx = gradBuffer(logits.size);
    be.crossEntropyBackward(logProbs, ids, rows, cols, g[0] * scale, dx, false);
    return [dx];
  });
}

/** Mean of (a - b)^2 over all elements; shapes must match exactly. */
export function mseLoss(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, "mseLoss", "input");
  checkTensor(b, "mseLoss", "target");
  if (!sameShape(a.shape, b.shape)) throw new Error(`mseLoss: input ${fmt(a.shape)} and target ${fmt(b.shape)} must have the same shape`);
  const d = sub(a, b);
  return mean(mul(d, d));
}
