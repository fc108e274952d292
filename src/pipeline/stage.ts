// One pipeline stage: a contiguous run of a model's partition units (one model chunk, i.e. one
// virtual stage). Per micro-batch it keeps its input as a detached leaf and either the autograd graph
// of its forward or, with recomputation, nothing else (the forward is re-run under enableGrad in B).
//
// Gradients: B back-propagates the output gradient to the stage input and, unless the backward is
// split (zero-bubble), to the weights as well; W computes the deferred weight gradients through the
// engine's `defer` closure. Weight gradients accumulate in `param.grad` across micro-batches in the
// stage's own action order, which is what makes every executor produce identical bits.
//
// Loss-scaling rule (the one rule of the whole pipeline): with R target rows in the whole mini-batch
// (rows = target.shape[0], or the label count of Int32Array class ids) and r_j in micro-batch j,
// micro-batch j's loss is weighted so the micro-batch losses sum to the mini-batch mean: a "mean"
// loss (PyTorch's default reduction, e.g. a user's MSE) is multiplied by r_j / R, the built-in
// cross-entropy's per-target SUM by 1 / R. The accumulated gradient is then the gradient of the
// mini-batch mean, exactly what single-device training computes.
//
// Dropout under recomputation: the forward remembers each Dropout's random stream position and the
// recomputation replays it, so both draw the same masks.
//
// BatchNorm under micro-batches: every forward normalises with its own micro-batch's
// statistics; the running averages are NOT touched by micro-batch forwards. Instead the stage records,
// per BatchNorm layer, the per-channel count, sum and sum of squares (float64) of every micro-batch
// input of the mini-batch, and at STEP commits once:
//   running_mean = (1 - momentum) * running_mean + momentum * mean(mini-batch)
//   running_var  = (1 - momentum) * running_var  + momentum * unbiased_var(mini-batch)
// i.e. the update single-device training makes from the whole mini-batch. Recomputed forwards record
// nothing.
import { backward, computeDeferred, enableGrad, noGrad, record, type DeferredGrads } from "../autograd/engine.js";
import { Tensor } from "../tensor/tensor.js";
import { deviceArrays } from "../tensor/host-arrays.js";
import { fmt } from "../tensor/shape.js";
import { describeValue } from "../util/describe.js";
import type { Module } from "../nn/module.js";
import { BatchNorm2d, collectBatchNormStatistics, type BatchNormCollector } from "../nn/norm.js";
import { Dropout } from "../nn/dropout.js";
import type { Rng } from "../tensor/random.js";
import { countCorrectLater, crossEntropyLoss } from "../nn/loss.js";
import { checkLossBroadcast } from "./loss-check.js";
import { ActivationMeter, graphBytes } from "./activation-bytes.js";

/** Targets of a micro-batch: class ids (one per output row) or a float tensor [rows, ...]. */
export type Target = Int32Array | Tensor;

/** Target rows: the label count of class ids, else the tensor's first dimension. */
export function targetRows(t: Target): number {
  return t instanceof Int32Array ? t.length : (t.rank === 0 ? 1 : t.shape[0]);
}

/** Targets of one micro-batch plus the loss scale of the documented rule (1 / target rows in mini-batch). */
export interface MicrobatchTargets {
  labels: Target;
  scale: number;
}

/**
 * The loss the last stage computes. `reduction: "mean"`: fn returns the micro-batch mean (weighted
 * by rows_j * scale); "sum": the per-target sum (weighted by scale). fn must return one value.
 */
export interface StageLoss {
  name: string;
  reduction: "mean" | "sum";
  fn(output: Tensor, target: Target): Tensor;
}

/** The built-in cross-entropy on class ids, summed (bit-identical to the pipeline's original rule). */
export const CROSS_ENTROPY_SUM: StageLoss = {
  name: "cross-entropy",
  reduction: "sum",
  fn(out, t) {
    if (!(t instanceof Int32Array)) throw new Error(`loss 'cross-entropy' needs Int32Array class ids as targets, got a float tensor ${fmt(t.shape)}; use loss 'mse' or your own loss for float targets`);
    return crossEntropyLoss(out, t, "sum");
  },
};

/** Instrumentation (tests): called before unit `unit` runs forward on micro-batch `mb`. */
export type UnitHook = (unit: number, microbatch: number, recording: boolean) => void;

/** What the last stage reports per micro-batch (loss already scaled by the rule above). */
export interface MicrobatchMetrics {
  loss: number;
  correct: number;
  count: number;
}

export interface StageOptions {
  /** Virtual stage index (chunk * S + stage), used in messages and errors. */
  index: number;
  /** [global unit index, unit] in model order. */
  units: readonly (readonly [number, Module])[];
  /** The stage receives the model input (no input gradient is needed). */
  isFirst: boolean;
  /** The stage computes the loss. */
  isLast: boolean;
  /** Keep only the input per micro-batch and recompute the forward in B. */
  recompute: boolean;
  /** State-dict prefix of the units ("layers" for built-in models, "" for a user's layer list). */
  prefix?: string;
  /** The last stage's loss (default: the built-in cross-entropy on class ids). */
  loss?: StageLoss;
  /** Test instrumentation run before every unit's forward (faults). */
  beforeUnit?: UnitHook;
  /** Where the activation bytes this stage holds are counted (a worker's stages share one); default: its own. */
  meter?: ActivationMeter;
}

interface Saved {
  input: Tensor;
  /** Output (or loss on the last stage) with its graph; null when recomputing. */
  root: Tensor | null;
  targets: MicrobatchTargets | null;
  /** Weight-gradient closure left by a split B ("none": the stage's graph needs no gradient). */
  deferred: DeferredGrads | "none" | null;
  /** Dropout random streams as they were before this micro-batch's forward (for recomputation). */
  dropoutState: Rng[] | null;
  /** Weights the graph reaches (collected on a stage's first split B, to check W). */
  mustReach?: Set<Tensor>;
  /** Activation bytes counted on the meter for this micro-batch (graphBytes, or the input when recomputing). */
  bytes: number;
}

/** Result of a forward: the output for the next stage, or the metrics on the last stage. */
export interface ForwardResult {
  output: Tensor | null;
  /**
   * True when nothing of this stage references the output's buffer any more (recomputation keeps
   * no graph), so an executor may transfer the buffer itself instead of a copy.
   */
  transferable: boolean;
  metrics: MicrobatchMetrics | null;
}

/**
 * Per-channel moments of every micro-batch input of one BatchNorm layer during a mini-batch, in one
 * array [count, sum per channel, sum of squares per channel] (what REDUCE sums over replicas).
 */
class BatchNormStats {
  readonly moments: Float64Array;
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;

  constructor(readonly bn: BatchNorm2d) {
    const C = bn.channels;
    this.moments = new Float64Array(1 + 2 * C);
    this.sum = this.moments.subarray(1, 1 + C);
    this.sumSq = this.moments.subarray(1 + C);
  }

  record(x: Tensor): void {
    const [n, c] = x.shape;
    const hw = x.size / (n * c);
    // The float64 sums need the host (WGSL has no f64): a device array comes back once, as a plain
    // copy, rather than element by element through its proxy.
    const d = deviceArrays() ? x.data.slice() : x.data;
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < c; ch++) {
        let s = 0, sq = 0;
        const base = (i * c + ch) * hw;
        for (let k = 0; k < hw; k++) { const v = d[base + k]; s += v; sq += v * v; }
        this.sum[ch] += s;
        this.sumSq[ch] += sq;
      }
    }
    this.moments[0] += n * hw;
  }

  commit(): void {
    const { bn } = this;
    const count = this.moments[0];
    if (count === 0) return;
    const m = bn.momentum;
    const rm = bn.runningMean.data, rv = bn.runningVar.data;
    for (let ch = 0; ch < bn.channels; ch++) {
      const mean = this.sum[ch] / count;
      const biased = Math.max(0, this.sumSq[ch] / count - mean * mean);
      const unbiased = count > 1 ? biased * count / (count - 1) : biased;
      rm[ch] = (1 - m) * rm[ch] + m * mean;
      rv[ch] = (1 - m) * rv[ch] + m * unbiased;
    }
    bn.numBatchesTracked.data[0] += 1;
    this.moments.fill(0);
  }
}

export class Stage {
  readonly index: number;
  readonly units: readonly (readonly [number, Module])[];
  readonly isFirst: boolean;
  readonly isLast: boolean;
  readonly recompute: boolean;
  private readonly saved = new Map<number, Saved>();
  /** This stage's BatchNorm layers, each with the statistics of the mini-batch so far. */
  private readonly bnStats = new Map<BatchNorm2d, BatchNormStats>();
  /** Whether a training forward's BatchNorm inputs count (a forward's yes; a recomputation's no). */
  private collectingStats = false;
  private readonly bnCollector: BatchNormCollector = {
    record: (layer, x) => { if (this.collectingStats) this.bnStats.get(layer)?.record(x); },
  };
  private readonly dropouts: Dropout[] = [];
  private readonly params: Tensor[];
  private deferChecked = false;
  private lossChecked = false;
  private readonly prefix: string;
  private readonly lossFn: StageLoss;
  private readonly beforeUnit: UnitHook | undefined;
  /** Activation bytes held by this stage (and the worker's other stages when shared). */
  readonly meter: ActivationMeter;
  /** Parameters and buffers: never counted as activations. */
  private readonly weights: ReadonlySet<Tensor>;

  constructor(o: StageOptions) {
    if (o.units.length === 0) throw new Error(`stage ${o.index} has no layers`);
    this.index = o.index;
    this.units = o.units;
    this.isFirst = o.isFirst;
    this.isLast = o.isLast;
    this.recompute = o.recompute;
    this.prefix = o.prefix ?? "layers";
    this.lossFn = o.loss ?? CROSS_ENTROPY_SUM;
    this.beforeUnit = o.beforeUnit;
    this.params = o.units.flatMap(([, m]) => m.parameters());
    this.meter = o.meter ?? new ActivationMeter();
    this.weights = new Set(this.stateDict().values());
    for (const [, unit] of o.units) {
      for (const [, m] of unit.namedModules()) {
        if (m instanceof Dropout) this.dropouts.push(m);
        if (m instanceof BatchNorm2d) this.bnStats.set(m, new BatchNormStats(m));
      }
    }
  }

  private unitName(i: number): string { return this.prefix ? `${this.prefix}.${i}` : String(i); }

  /** Parameters named as in the full model's state dict ("layers.3.weight", a user's "3.weight"). */
  namedParameters(): [string, Tensor][] {
    return this.units.flatMap(([i, m]) => m.namedParameters(this.unitName(i)));
  }

  /** Parameters and buffers named as in the full model's state dict. */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [i, m] of this.units) for (const [k, t] of m.stateDict(this.unitName(i))) out.set(k, t);
    return out;
  }

  /** The stage's parameters (every unit's, in model order). */
  get parameters(): readonly Tensor[] { return this.params; }

  /** Micro-batches whose activations (or inputs, when recomputing) are held right now. */
  get liveMicrobatches(): number { return this.saved.size; }

  private run(x: Tensor, mb: number, recording: boolean, instrumented = true): Tensor {
    // The stage owns its BatchNorm statistics (committed at STEP); the layers only normalise.
    return collectBatchNormStatistics(this.bnCollector, () => {
      let y = x;
      for (const [i, m] of this.units) {
        if (instrumented) this.beforeUnit?.(i, mb, recording);
        y = m.forward(y);
      }
      return y;
    });
  }

  /**
   * Evaluation of one micro-batch: eval mode (no dropout, BatchNorm's running statistics), no
   * gradients, nothing kept. Returns the output for the next stage; on the last stage the metrics
   * with the loss weighted by `targets.scale` (1: summed), or the output itself without targets.
   */
  evaluate(x: Tensor, targets: MicrobatchTargets | null): ForwardResult {
    const modes = this.units.map(([, m]) => m.training);
    for (const [, m] of this.units) m.eval();
    try {
      return noGrad(() => {
        const out = this.run(new Tensor(x.data, x.shape), -1, false, false);
        // Nothing of this stage keeps the output: it may be moved to the next worker.
        const transferable = out.data.buffer !== x.data.buffer;
        if (!this.isLast || !targets) return { output: out, transferable, metrics: null };
        const accuracy = accuracyOf(out, targets.labels);
        return { output: null, transferable: false, metrics: { loss: this.loss(out, targets).item(), ...accuracy() } };
      });
    } finally {
      this.units.forEach(([, m], i) => m.train(modes[i]));
    }
  }

  private loss(out: Tensor, t: MicrobatchTargets): Tensor {
    const { name, reduction, fn } = this.lossFn;
    if (!this.lossChecked) {
      // Once per stage, on the first micro-batch, before any weight moves (see loss-check.ts).
      if (t.labels instanceof Tensor) checkLossBroadcast(name, (o, y) => fn(o, y), out, t.labels);
      this.lossChecked = true;
    }
    const raw = fn(out, t.labels);
    if (!(raw instanceof Tensor)) throw new Error(`loss '${name}' must return a Tensor (the micro-batch mean), got ${describeValue(raw)}`);
    if (raw.size !== 1) {
      throw new Error(`loss '${name}' must return a scalar (one value: the micro-batch mean), got shape ${fmt(raw.shape)} for output ${fmt(out.shape)}`);
    }
    return scaleScalar(raw, reduction === "sum" ? t.scale : t.scale * targetRows(t.labels));
  }

  /**
   * Forward of micro-batch `mb`. `x` becomes this stage's input leaf (its buffer is kept, not copied).
   * Returns the output for the next stage, or on the last stage the micro-batch's metrics.
   */
  forward(mb: number, x: Tensor, targets: MicrobatchTargets | null): ForwardResult {
    if (this.saved.has(mb)) throw new Error(`stage ${this.index}: forward of micro-batch ${mb} ran twice without its backward`);
    if (this.isLast && !targets) throw new Error(`stage ${this.index}: the last stage needs the targets of micro-batch ${mb}`);
    const input = new Tensor(x.data, x.shape, !this.isFirst);
    // Recomputation must draw the same dropout masks: remember where each stream stood.
    const dropoutState = this.recompute && this.dropouts.length ? this.dropouts.map((d) => cloneRng(d.rng)) : null;
    this.collectingStats = true;
    let out: Tensor;
    try {
      out = this.recompute ? noGrad(() => this.run(input, mb, false)) : enableGrad(() => this.run(input, mb, true));
    } finally {
      this.collectingStats = false;
    }
    let root: Tensor | null = this.recompute ? null : out;
    let metrics: MicrobatchMetrics | null = null;
    if (this.isLast && targets) {
      // Counted before the loss, so that a device backend reads both back with one wait.
      const accuracy = accuracyOf(out, targets.labels);
      const loss = this.recompute ? noGrad(() => this.loss(out, targets)) : enableGrad(() => this.loss(out, targets));
      if (!this.recompute) root = loss;
      metrics = { loss: loss.item(), ...accuracy() };
    }
    const bytes = root ? graphBytes([root, input], this.weights) : input.data.byteLength;
    this.meter.add(bytes);
    this.saved.set(mb, { input, root, targets: this.isLast ? targets : null, deferred: null, dropoutState, bytes });
    const transferable = this.recompute && out.data.buffer !== input.data.buffer;
    return { output: this.isLast ? null : out, transferable, metrics };
  }

  /**
   * Backward of micro-batch `mb` from the gradient of its output (null on the last stage, whose root
   * is the loss). With `split`, only the input gradient is computed now and W computes the weights'.
   * Returns the gradient of the stage input (null on the first stage); the array belongs to the
   * caller (it may be transferred to another thread).
   */
  backward(mb: number, gradOutput: Float32Array | null, split: boolean): Tensor | null {
    const s = this.saved.get(mb);
    if (!s) throw new Error(`stage ${this.index}: backward of micro-batch ${mb} before its forward`);
    if (s.deferred) throw new Error(`stage ${this.index}: backward of micro-batch ${mb} ran twice`);
    if (!this.isLast && !gradOutput) throw new Error(`stage ${this.index}: backward of micro-batch ${mb} needs the output gradient`);
    let root = s.root;
    if (!root) {
      // Recomputation: same forward, now recorded; BatchNorm statistics are not recorded again.
      const live = this.dropouts.map((d) => d.rng);
      s.dropoutState?.forEach((r, i) => { this.dropouts[i].rng = cloneRng(r); });
      try {
        root = enableGrad(() => {
          const out = this.run(s.input, mb, true);
          return this.isLast && s.targets ? this.loss(out, s.targets) : out;
        });
      } finally {
        live.forEach((r, i) => { this.dropouts[i].rng = r; });
      }
      // The recomputed graph is held while this backward runs (and until W when it is split).
      const extra = graphBytes([root, s.input], this.weights) - s.bytes;
      this.meter.add(extra);
      s.bytes += extra;
    }
    if (!this.isLast && gradOutput && gradOutput.length !== root.size) {
      throw new Error(`stage ${this.index}: output gradient of ${gradOutput.length} values for output ${fmt(root.shape)}`);
    }
    if (!root.requiresGrad) {
      // Nothing here needs a gradient (e.g. a first stage holding only a Flatten).
      if (split) s.deferred = "none"; else this.release(mb);
      return this.isFirst ? null : new Tensor(new Float32Array(s.input.size), s.input.shape);
    }
    const grads = this.isLast ? undefined : [gradOutput];
    const params = this.params.filter((p) => p.requiresGrad);
    if (split) {
      // B computes every activation gradient inside the stage (on a first stage too, where no
      // input gradient leaves it), so that W is only the weights' products.
      if (!this.deferChecked) s.mustReach = reachableLeaves(root);
      s.deferred = backward(root, grads, { leaves: this.isFirst ? [] : [s.input], defer: params });
      s.root = null;
    } else {
      backward(root, grads, { leaves: this.isFirst ? params : [s.input, ...params] });
      this.release(mb);
    }
    let g = this.isFirst ? null : s.input.grad?.data ?? new Float32Array(s.input.size);
    s.input.grad = null;
    // A pass-through op (add, reshape) may have handed the same array to a deferred weight-gradient
    // op, which W still reads: give the caller its own copy then.
    if (g && split) g = g.slice();
    return g ? new Tensor(g, s.input.shape) : null;
  }

  /**
   * Deferred weight gradients of micro-batches `mbs` (each after its split B), computed in one pass:
   * a layer's weight gradient over all of them is one product over their stacked rows.
   */
  weightGrads(mbs: readonly number[]): void {
    const params = this.params.filter((p) => p.requiresGrad);
    const work: DeferredGrads[] = [];
    let mustReach: Set<Tensor> | undefined;
    for (const mb of mbs) {
      const s = this.saved.get(mb);
      if (!s?.deferred) throw new Error(`stage ${this.index}: W of micro-batch ${mb} without a split B before it`);
      this.release(mb);
      mustReach ??= s.mustReach;
      if (s.deferred !== "none") work.push(s.deferred);
    }
    computeDeferred(work);
    // The engine can defer only gradients of ops that consume a weight directly; a weight used
    // through another op (e.g. a transpose) would silently get nothing. Checked on the first W.
    if (mustReach) {
      this.deferChecked = true;
      for (const p of params) {
        if (mustReach.has(p) && p.grad === null) {
          throw new Error(`stage ${this.index}: split backward could not compute the gradient of ${p.name ?? "a parameter"}; ` +
            `its layer uses the weight through an intermediate op. Use a schedule without W (gpipe, 1f1b, interleaved)`);
        }
      }
    }
  }

  /**
   * The mini-batch's BatchNorm moments so far, one array per layer (live views: REDUCE replaces them
   * by their sum over the replicas, so every replica commits the whole mini-batch's statistics).
   */
  get statistics(): Float64Array[] { return [...this.bnStats.values()].map((s) => s.moments); }

  /** Commits BatchNorm running statistics of the mini-batch (called at STEP). */
  commitStatistics(): void {
    for (const s of this.bnStats.values()) s.commit();
  }

  /** Drops every held micro-batch (after an error or at shutdown). */
  clear(): void {
    for (const mb of [...this.saved.keys()]) this.release(mb);
  }

  /** Forgets micro-batch mb's saved state and its activation bytes. */
  private release(mb: number): void {
    const s = this.saved.get(mb);
    if (!s) return;
    this.meter.remove(s.bytes);
    this.saved.delete(mb);
  }

}

/**
 * Correct predictions when the targets are class ids, one per output row; else none (count = rows).
 * Started now, read when the returned function is called (see countCorrectLater).
 */
function accuracyOf(out: Tensor, t: Target): () => { correct: number; count: number } {
  const rows = targetRows(t);
  const classes = out.rank > 0 ? out.shape[out.rank - 1] : 0;
  if (!(t instanceof Int32Array) || classes === 0 || out.size / classes !== rows) return () => ({ correct: 0, count: rows });
  const correct = countCorrectLater(out, t);
  return () => ({ correct: correct(), count: rows });
}

/** loss * scale for a scalar loss, recorded on the tape. */
function scaleScalar(t: Tensor, scale: number): Tensor {
  const out = new Tensor(new Float32Array([t.data[0] * scale]), t.shape);
  return record(out, "scaleLoss", [t], (g, needs) => [needs[0] ? new Float32Array([g[0] * scale]) : null]);
}

/** An independent copy of a random stream at its current position. */
function cloneRng(r: Rng): Rng {
  return Object.assign(Object.create(Object.getPrototypeOf(r) as object) as Rng, r);
}

/** Leaves (tensors without gradFn that require grad) reachable from root. */
function reachableLeaves(root: Tensor): Set<Tensor> {
  const seen = new Set<Tensor>();
  const leaves = new Set<Tensor>();
  const stack = [root];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (!t.gradFn) { if (t.requiresGrad) leaves.add(t); continue; }
    for (const x of t.gradFn.inputs) if (x.requiresGrad) stack.push(x);
  }
  return leaves;
}
