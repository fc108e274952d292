// Accuracy bookkeeping for replicas: correct predictions of logits [..., C] against one target per row.
import type { Tensor } from "../tensor/tensor.js";

export function countCorrect(logits: Tensor, labels: Int32Array): number {
  const classes = logits.shape[logits.rank - 1];
  const rows = logits.size / classes;
  const d = logits.data;
  let correct = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (d[r * classes + c] > d[r * classes + best]) best = c;
    if (best === labels[r]) correct++;
  }
  return correct;
}
