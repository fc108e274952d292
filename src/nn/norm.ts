// Normalisation layers with torch's parameter and buffer names (weight, bias, running_mean, …).
import { batchNorm, groupNorm, layerNorm } from "../autograd/index.js";
import { Tensor } from "../tensor/tensor.js";
import { fmt } from "../tensor/shape.js";
import { Module } from "./module.js";
import { checkPositiveInt } from "./validate.js";

/** Layer norm over the last axis of size `dim`, affine weight = 1, bias = 0 initially. */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    checkPositiveInt("LayerNorm dim", dim);
    this.weight = this.registerParameter("weight", Tensor.ones([dim]));
    this.bias = this.registerParameter("bias", Tensor.zeros([dim]));
  }

  forward(x: Tensor): Tensor {
    if (x.shape[x.rank - 1] !== this.dim) {
      throw new Error(`LayerNorm(${this.dim}): input ${fmt(x.shape)} must end in ${this.dim}`);
    }
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** Group norm of [N, C, ...] with `groups` groups of C/groups channels each. */
export class GroupNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    checkPositiveInt("GroupNorm groups", groups);
    checkPositiveInt("GroupNorm channels", channels);
    if (channels % groups !== 0) throw new Error(`GroupNorm: channels ${channels} must be divisible by groups ${groups}`);
    this.weight = this.registerParameter("weight", Tensor.ones([channels]));
    this.bias = this.registerParameter("bias", Tensor.zeros([channels]));
  }

  forward(x: Tensor): Tensor { return groupNorm(x, this.groups, this.weight, this.bias, this.eps); }
}

/**
 * Batch norm over [N, C, H, W] like torch.nn.BatchNorm2d: batch statistics in training (running
 * stats updated with `momentum`, unbiased variance), running statistics in eval.
 */
/**
 * Who keeps BatchNorm2d's running statistics in a training forward. By default each layer updates
 * its own (as PyTorch's does). Inside collectBatchNormStatistics(collector, fn), every BatchNorm2d
 * hands its training input to the collector and leaves its statistics alone: a pipeline accumulates
 * them over a mini-batch's micro-batches and commits them once per step, as one device would.
 */
export interface BatchNormCollector {
  record(layer: BatchNorm2d, x: Tensor): void;
}

let collector: BatchNormCollector | null = null;

/** Runs `fn` with `c` receiving every BatchNorm2d training input (and the layers not updating). */
export function collectBatchNormStatistics<T>(c: BatchNormCollector, fn: () => T): T {
  const outer = collector;
  collector = c;
  try { return fn(); } finally { collector = outer; }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  /** Float scalar (torch keeps an int64); counts training forwards that updated the statistics. */
  readonly numBatchesTracked: Tensor;
  /**
   * When false, training forwards use batch statistics but leave the running statistics alone; a
   * pipeline turns it off for recomputed forwards and for all but one micro-batch pass if it wants.
   */
  updateRunningStats = true;

  constructor(readonly channels: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    checkPositiveInt("BatchNorm2d channels", channels);
    this.weight = this.registerParameter("weight", Tensor.ones([channels]));
    this.bias = this.registerParameter("bias", Tensor.zeros([channels]));
    this.runningMean = this.registerBuffer("running_mean", Tensor.zeros([channels]));
    this.runningVar = this.registerBuffer("running_var", Tensor.ones([channels]));
    this.numBatchesTracked = this.registerBuffer("num_batches_tracked", Tensor.zeros([]));
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.channels) {
      throw new Error(`BatchNorm2d(${this.channels}): input ${fmt(x.shape)} must be [N, ${this.channels}, H, W]`);
    }
    if (this.training && collector) collector.record(this, x);
    const update = this.training && this.updateRunningStats && collector === null;
    // A training forward that must leave the statistics alone passes none: its output never depends
    // on them, and scratch copies would only cost work (and on a device, a round trip each).
    const keep = update || !this.training;
    const y = batchNorm(x, this.weight, this.bias, keep ? this.runningMean : null, keep ? this.runningVar : null,
      this.training, this.momentum, this.eps);
    if (update) this.numBatchesTracked.data[0] += 1;
    return y;
  }
}
