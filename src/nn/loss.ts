// Loss wrappers shaped for models: logits [..., C] against integer class targets, one per row.
import { crossEntropy, reshape } from "../autograd/index.js";
import { getBackend } from "../backend/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { fmt } from "../tensor/shape.js";

/**
 * Cross-entropy of logits [..., C] (e.g. gpt's [B, T, vocab]) against targets with one class per
 * leading position, flattened row-major. `reduction` as in torch.
 */
export function crossEntropyLoss(logits: Tensor, targets: Int32Array, reduction: "mean" | "sum" = "mean"): Tensor {
  if (logits.rank < 2) throw new Error(`crossEntropyLoss: logits ${fmt(logits.shape)} must have rank >= 2`);
  const classes = logits.shape[logits.rank - 1];
  const rows = logits.size / classes;
  if (targets.length !== rows) {
    throw new Error(`crossEntropyLoss: logits ${fmt(logits.shape)} need ${rows} targets, got ${targets.length}`);
  }
  const flat = logits.rank === 2 ? logits : reshape(logits, [rows, classes]);
  return crossEntropy(flat, targets, reduction);
}

/** Rows of logits [..., C] whose first maximum is at the target class (one target per row). */
export function countCorrect(logits: Tensor, targets: Int32Array): number {
  return countCorrectLater(logits, targets)();
}

/**
 * countCorrect started now and read when the returned function is called: a device backend brings
 * the count back with its next read-back (the loss's) instead of waiting for it alone.
 */
export function countCorrectLater(logits: Tensor, targets: Int32Array): () => number {
  const c = logits.shape[logits.rank - 1];
  const rows = logits.size / c;
  const be = getBackend();
  if (be.countCorrect && rows > 0 && c > 0) return be.countCorrect(logits.data, targets, rows, c);
  const d = logits.data;
  let correct = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (d[r * c + j] > d[r * c + best]) best = j;
    if (best === targets[r]) correct++;
  }
  return () => correct;
}
