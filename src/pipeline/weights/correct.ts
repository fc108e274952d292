// PipeMare discrepancy correction (T2). The stage tracks a velocity of its weights,
//   delta <- gamma * delta + (1 - gamma) * (w_new - w_old)        after every update,
// and runs its backward with w_bkwd = w - tau * delta, an estimate of the weights the forward used
// tau updates earlier. gamma = D^(1/tau) for a global D in (0, 1), or set directly.
//
// One extra weight-sized buffer: instead of storing delta (which would need a second buffer for
// w_old at update time and a third for the materialised w_bkwd), we store u = w - tau * delta, the
// backward weights themselves. Substituting tau * delta = w_old - u into the rule gives
//   u_new = gamma * u + (tau(1-gamma) - gamma) * w_old + (1 - tau(1-gamma)) * w_new,
// applied in two halves: the w_old terms in beforeStep(), the w_new term in afterStep(). Both
// coefficients are bounded (tau(1-gamma) -> -ln D as tau grows for gamma = D^(1/tau)), so the
// rounding error per update is a few float32 ulps of |w| and decays by gamma per update.
import { PolicyBase, checkMicrobatch, checkTau, type PolicyContext } from "./policy.js";
import { allocLike, axpbySet, copyInto, type WeightSet } from "./vec.js";

export interface CorrectionOptions {
  /** The stage's delay (updates between a micro-batch's forward and the update of its gradient). */
  tau: number;
  /** Velocity decay; default D^(1/tau). Must be in [0, 1). */
  gamma?: number;
  /** The global D of gamma = D^(1/tau), in (0, 1). Ignored when gamma is given. */
  decay?: number;
}

export const DEFAULT_PIPEMARE_DECAY = 0.1;

/** gamma = D^(1/tau), PipeMare's per-stage velocity decay. */
export function correctionGamma(decay: number, tau: number): number {
  if (!(decay > 0 && decay < 1)) throw new Error(`pipemare decay D must be in (0, 1), got ${decay}`);
  checkTau("pipemare correction", tau);
  return Math.pow(decay, 1 / tau);
}

export class CorrectionPolicy extends PolicyBase {
  readonly name = "pipemare-correction" as const;
  readonly tau: number;
  readonly gamma: number;
  /** u = w - tau * delta: the backward weights. */
  private readonly u: Float32Array[];
  private midStep = false;

  constructor(ctx: PolicyContext, opts: CorrectionOptions) {
    super(ctx, "pipemare-correction policy");
    checkTau("pipemare-correction policy", opts.tau);
    if (opts.gamma !== undefined && !(opts.gamma >= 0 && opts.gamma < 1)) {
      throw new Error(`pipemare-correction: gamma must be in [0, 1), got ${opts.gamma}`);
    }
    this.tau = opts.tau;
    this.gamma = opts.gamma ?? correctionGamma(opts.decay ?? DEFAULT_PIPEMARE_DECAY, opts.tau);
    this.u = allocLike(this.live);
    copyInto(this.u, this.live); // delta starts at 0
    this.notePeak();
  }

  forwardWeights(mb: number): WeightSet { checkMicrobatch(this.name, mb); return this.live; }

  /** w - tau * delta. Unchanged until the next beforeStep(); do not modify it. */
  backwardWeights(mb: number): WeightSet {
    checkMicrobatch(this.name, mb);
    if (this.midStep) throw new Error("pipemare-correction: backwardWeights called between beforeStep() and afterStep()");
    return this.u;
  }

  beforeStep(): void {
    if (this.midStep) throw new Error("pipemare-correction: beforeStep() called twice without afterStep()");
    const { tau, gamma } = this;
    axpbySet(tau * (1 - gamma) - gamma, this.live, gamma, this.u);
    this.midStep = true;
  }

  afterStep(): void {
    if (!this.midStep) throw new Error("pipemare-correction: afterStep() without beforeStep() (the correction needs the weights before the update)");
    axpbySet(1 - this.tau * (1 - this.gamma), this.live, 1, this.u);
    this.midStep = false;
  }

  /** delta = (w - u) / tau, written into out (for inspection and tests). */
  velocity(out: WeightSet): void {
    for (let i = 0; i < out.length; i++) {
      const w = this.live[i], u = this.u[i], o = out[i];
      for (let j = 0; j < o.length; j++) o[j] = (w[j] - u[j]) / this.tau;
    }
  }

  describe(): string {
    return `pipemare-correction (T2: backward uses w - tau*delta, tau=${this.tau}, gamma=${this.gamma.toPrecision(4)})`;
  }

  /** u itself (not delta): restoring it is bit-exact, and it is what the rule updates. */
  protected override stateBuffers(): Record<string, WeightSet> { return { pipemare_u: this.u }; }
  protected override checkSettled(): void {
    if (this.midStep) throw new Error("pipemare-correction: state saved or loaded between beforeStep() and afterStep()");
  }

  protected extraSets(): number { return 1; }
}
