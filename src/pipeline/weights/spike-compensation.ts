// Spike Compensation (Pipelined Backpropagation): momentum SGD whose update of a gradient delayed by
// D updates is reshaped so the weights end where undelayed momentum SGD would have put them:
//   v <- m v + g;   w <- w - lr (m^D v + (1 - m^D)/(1 - m) g)
// D = 0 is plain momentum SGD, D = 1 is Nesterov, and for every D the total effect of one gradient
// over all later updates is -lr/(1-m) g. Weight decay is coupled as in torch (g <- g + wd * w).
//
// It is an Optimizer like src/optim's SGD (parameter groups, setLrFactor for PipeMare's T1 or a
// schedule, stateDict with "momentum_buffer" per parameter), with the delay D as a hyperparameter,
// so a PB stage without SC is this optimizer with D = 0.
import type { Tensor } from "../../tensor/tensor.js";
import { getBackend } from "../../backend/index.js";
import { Optimizer, type OptimizerState, type ParamsInput } from "../../optim/optimizer.js";
import type { MomentumSource } from "./predict.js";

export interface SpikeSgdOptions {
  lr: number;
  /** Momentum m in [0, 1). */
  momentum: number;
  /** Delay D >= 0 being compensated (the stage's tau); 0 = plain momentum SGD. */
  delay: number;
  weightDecay: number;
}

interface SpikeState { step: number; momentumBuffer: Float32Array }

export const SPIKE_SGD_DEFAULTS: Omit<SpikeSgdOptions, "lr"> = { momentum: 0.9, delay: 0, weightDecay: 0 };

/** Coefficients of v and g in the update: m^D and (1 - m^D)/(1 - m). */
export function spikeCoefficients(momentum: number, delay: number): { onVelocity: number; onGradient: number } {
  const mD = Math.pow(momentum, delay);
  return { onVelocity: mD, onGradient: (1 - mD) / (1 - momentum) };
}

export class SpikeCompensatedSGD extends Optimizer<SpikeSgdOptions, SpikeState> {
  readonly kind = "spike-sgd";

  constructor(params: ParamsInput<SpikeSgdOptions>, options: Partial<SpikeSgdOptions> & { lr: number }) {
    super(params, { ...SPIKE_SGD_DEFAULTS, ...options });
  }

  /**
   * A saved state's moments and hyper-parameters, except D: the delay belongs to the schedule phase
   * that runs now (a synchronous warm-up saves D = 0, its asynchronous phase goes on with D = tau).
   */
  override loadStateDict(sd: OptimizerState): void {
    const delays = this.groups.map((g) => g.hyper.delay);
    super.loadStateDict(sd);
    this.groups.forEach((g, i) => { g.hyper.delay = delays[i]; });
  }

  protected validate(h: SpikeSgdOptions): void {
    if (!(h.lr >= 0 && Number.isFinite(h.lr))) throw new Error(`spike-compensated SGD: lr must be a finite number >= 0, got ${h.lr}`);
    if (!(h.momentum >= 0 && h.momentum < 1)) throw new Error(`spike-compensated SGD: momentum must be in [0, 1), got ${h.momentum}`);
    if (!(h.delay >= 0 && Number.isFinite(h.delay))) throw new Error(`spike-compensated SGD: delay D must be a finite number >= 0, got ${h.delay}`);
    if (!(h.weightDecay >= 0 && Number.isFinite(h.weightDecay))) throw new Error(`spike-compensated SGD: weightDecay must be a finite number >= 0, got ${h.weightDecay}`);
  }

  protected update(w: Tensor, g: Tensor, h: SpikeSgdOptions, s: SpikeState | undefined): SpikeState {
    const be = getBackend();
    const v = s?.momentumBuffer ?? new Float32Array(w.size); // v starts at 0, so the first v is g
    const { onVelocity, onGradient } = spikeCoefficients(h.momentum, h.delay);
    be.axpby(1, g.data, h.momentum, v); // v = m v + g
    if (h.weightDecay !== 0) be.axpby(h.weightDecay, w.data, 1, v); // ... + wd * w_old
    // w <- w - lr c (g + wd w) first (it needs w_old), then w <- w - lr m^D v.
    be.axpby(-h.lr * onGradient, g.data, 1 - h.lr * onGradient * h.weightDecay, w.data);
    be.axpby(-h.lr * onVelocity, v, 1, w.data);
    return { step: (s?.step ?? 0) + 1, momentumBuffer: v };
  }

  protected buffersOf(s: SpikeState): Record<string, Float32Array | null> {
    return { momentum_buffer: s.momentumBuffer };
  }

  protected restore(step: number, buffers: Record<string, Float32Array>, size: number, name: string): SpikeState {
    const v = buffers.momentum_buffer;
    if (!v) throw new Error(`spike-compensated SGD state for '${name}' has no momentum_buffer`);
    if (v.length !== size) throw new Error(`spike-compensated SGD momentum_buffer of '${name}' has ${v.length} elements, the parameter ${size}`);
    return { step, momentumBuffer: v };
  }

  /** The momentum of `params` (in that order) for Linear Weight Prediction's velocity form. */
  momentumSource(params: readonly Tensor[]): MomentumSource {
    const groupOf = params.map((p) => {
      const g = this.groups.find((gr) => gr.params.some(([, t]) => t === p));
      if (!g) throw new Error(`momentumSource: a parameter${p.name ? ` ('${p.name}')` : ""} is not optimized by this optimizer`);
      return g;
    });
    return {
      velocity: (i) => this.state.get(params[i])?.momentumBuffer ?? null,
      lr: (i) => groupOf[i].hyper.lr,
    };
  }
}
