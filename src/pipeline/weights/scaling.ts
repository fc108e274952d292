// Batch-size scaling rules of Pipelined Backpropagation: hyperparameters tuned for momentum SGD at
// batch B, moved to batch b (PB uses b = 1) without re-tuning:
//   m_b  = m_B ^ (b/B)
//   lr_b = lr_B * (b/B) * (1 - m_b) / (1 - m_B)
// so one update at batch b moves the weights (b/B) as far as one at batch B, counting the whole
// momentum tail: lr_b / (1 - m_b) = (b/B) * lr_B / (1 - m_B). Weight decay per step is scaled by b/B:
// with torch-style coupled decay (wd * w added to the gradient, as in src/optim SGD and
// SpikeCompensatedSGD) the decay rides the same lr / (1 - m) factor, so the coefficient stays wd_B
// and the decay per step, lr_b * wd / (1 - m_b), is exactly (b/B) times that at batch B. (Scaling the
// coefficient itself by b/B would shrink the decay by (b/B)^2.) Schedules are counted in samples.

export interface SgdHyper {
  lr: number;
  momentum: number;
  /** Coupled (torch SGD) weight decay coefficient. */
  weightDecay: number;
}

export interface ScaledHyper extends SgdHyper {
  /** b / B. */
  ratio: number;
}

function checkBatch(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`batch-size scaling: ${name} must be a positive integer, got ${n}`);
}

export function scaleForBatch(h: SgdHyper, fromBatch: number, toBatch: number): ScaledHyper {
  checkBatch("fromBatch (B)", fromBatch);
  checkBatch("toBatch (b)", toBatch);
  if (!(h.momentum >= 0 && h.momentum < 1)) throw new Error(`batch-size scaling: momentum must be in [0, 1), got ${h.momentum}`);
  if (!(h.lr >= 0 && Number.isFinite(h.lr))) throw new Error(`batch-size scaling: lr must be a finite number >= 0, got ${h.lr}`);
  if (!(h.weightDecay >= 0 && Number.isFinite(h.weightDecay))) throw new Error(`batch-size scaling: weightDecay must be a finite number >= 0, got ${h.weightDecay}`);
  const ratio = toBatch / fromBatch;
  const momentum = Math.pow(h.momentum, ratio);
  const lr = h.lr * ratio * (1 - momentum) / (1 - h.momentum);
  return { lr, momentum, weightDecay: h.weightDecay, ratio };
}

/** Weight decay applied per update, momentum tail included: lr * wd / (1 - m). */
export function decayPerStep(h: SgdHyper): number {
  return h.lr * h.weightDecay / (1 - h.momentum);
}

/**
 * A schedule written for steps at batch B (such as src/optim's LrSchedule), evaluated at steps of
 * batch b: step k at batch b starts after k*b samples, which fall in step floor(k*b/B) at batch B.
 */
export function scheduleInSamples(atBatchB: (step: number) => number, fromBatch: number, toBatch: number): (step: number) => number {
  checkBatch("fromBatch (B)", fromBatch);
  checkBatch("toBatch (b)", toBatch);
  return (k) => {
    if (!Number.isInteger(k) || k < 0) throw new Error(`schedule step must be a non-negative integer, got ${k}`);
    return atBatchB(Math.floor(k * toBatch / fromBatch));
  };
}
