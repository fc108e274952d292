// Linear Weight Prediction (LWP, Pipelined Backpropagation): the forward of a micro-batch runs with
// the weights extrapolated D updates ahead, to where they will be when its gradient is applied:
//   velocity form:   w_hat = w - lr * D * v      (v: the optimizer's momentum buffer)
//   difference form: w_hat = w + D * (w - w_prev) (w_prev: the weights before the last update)
// For plain momentum SGD with a constant lr both give the same prediction, w - w_prev = -lr * v.
// The backward uses the live weights. Memory: one prediction buffer (plus w_prev in difference form).
import { PolicyBase, checkMicrobatch, type PolicyContext } from "./policy.js";
import { allocLike, axpbyArray, axpbySet, copyInto, type WeightSet } from "./vec.js";

/** Read access to an optimizer's momentum, per parameter (same order as the policy's params). */
export interface MomentumSource {
  /** Momentum buffer of parameter i, or null before its first update (treated as zero). */
  velocity(i: number): Float32Array | null;
  /** The lr that the next update of parameter i will use. */
  lr(i: number): number;
}

export type PredictionMode = "velocity" | "difference";
export const PREDICTION_MODES: readonly PredictionMode[] = ["velocity", "difference"];

export interface PredictOptions {
  /** Prediction horizon in updates; PB uses the stage's delay tau. */
  horizon: number;
  mode?: PredictionMode;
  /** Required for the velocity form. */
  momentum?: MomentumSource;
}

export class PredictPolicy extends PolicyBase {
  readonly name = "predict" as const;
  readonly horizon: number;
  readonly mode: PredictionMode;
  private readonly momentum: MomentumSource | null;
  private readonly predicted: Float32Array[];
  private readonly prev: Float32Array[] | null;
  /** lr per parameter the cached prediction was made with; NaN = stale. */
  private readonly cachedLr: Float64Array;
  private stale = true;

  constructor(ctx: PolicyContext, opts: PredictOptions) {
    super(ctx, "predict policy");
    if (!(Number.isFinite(opts.horizon) && opts.horizon >= 0)) {
      throw new Error(`predict: horizon D must be a finite number >= 0, got ${opts.horizon}`);
    }
    this.mode = opts.mode ?? "velocity";
    if (!PREDICTION_MODES.includes(this.mode)) {
      throw new Error(`predict: mode '${String(this.mode)}' is not valid; choose one of: ${PREDICTION_MODES.join(", ")}`);
    }
    if (this.mode === "velocity" && !opts.momentum) {
      throw new Error("predict: the velocity form (w - lr*D*v) needs the optimizer's momentum (opts.momentum); use mode 'difference' otherwise");
    }
    this.horizon = opts.horizon;
    this.momentum = opts.momentum ?? null;
    this.predicted = allocLike(this.live);
    this.prev = this.mode === "difference" ? allocLike(this.live) : null;
    if (this.prev) copyInto(this.prev, this.live);
    this.cachedLr = new Float64Array(this.live.length).fill(NaN);
    this.notePeak();
  }

  /** w_hat. Unchanged until the next afterStep() (recomputed lazily when the weights or lr moved). */
  forwardWeights(mb: number): WeightSet {
    checkMicrobatch(this.name, mb);
    const D = this.horizon;
    if (this.mode === "difference") {
      if (this.stale) {
        copyInto(this.predicted, this.live);
        axpbySet(-D, this.prev as Float32Array[], 1 + D, this.predicted); // (1+D) w - D w_prev
      }
    } else {
      const src = this.momentum as MomentumSource;
      for (let i = 0; i < this.live.length; i++) {
        const lr = src.lr(i);
        if (!this.stale && lr === this.cachedLr[i]) continue;
        const p = this.predicted[i];
        p.set(this.live[i]);
        const v = src.velocity(i);
        if (v) {
          if (v.length !== p.length) throw new Error(`predict: momentum buffer of parameter ${i} has ${v.length} elements, the parameter ${p.length}`);
          axpbyArray(-lr * D, v, 1, p);
        }
        this.cachedLr[i] = lr;
      }
    }
    this.stale = false;
    return this.predicted;
  }

  backwardWeights(mb: number): WeightSet { checkMicrobatch(this.name, mb); return this.live; }

  beforeStep(): void {
    if (this.prev) copyInto(this.prev, this.live);
  }

  afterStep(): void {
    this.stale = true;
  }

  describe(): string {
    const rule = this.mode === "velocity" ? "w - lr*D*v" : "w + D*(w - w_prev)";
    return `predict (LWP: forward uses ${rule}, D=${this.horizon})`;
  }

  /** The difference form's w_prev; the prediction itself is a cache, recomputed after a load. */
  protected override stateBuffers(): Record<string, WeightSet> { return this.prev ? { lwp_prev: this.prev } : {}; }
  protected override afterLoad(): void { this.stale = true; }

  protected extraSets(): number { return this.prev ? 2 : 1; }
}
