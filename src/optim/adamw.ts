// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias-corrected moments; no amsgrad).
import type { Tensor } from "../tensor/tensor.js";
import { getBackend } from "../backend/index.js";
import { Optimizer, type ParamsInput } from "./optimizer.js";
import { allocFloat32 } from "../tensor/host-arrays.js";

export interface AdamWOptions { lr: number; betas: [number, number]; eps: number; weightDecay: number }
interface AdamWState { step: number; expAvg: Float32Array; expAvgSq: Float32Array }

/** torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2. */
export const ADAMW_DEFAULTS: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 };

export class AdamW extends Optimizer<AdamWOptions, AdamWState> {
  readonly kind = "adamw";

  constructor(params: ParamsInput<AdamWOptions>, options: Partial<AdamWOptions> = {}) {
    super(params, { ...ADAMW_DEFAULTS, ...options });
  }

  protected validate(h: AdamWOptions): void {
    if (!(h.lr >= 0)) throw new Error(`AdamW lr must be >= 0, got ${h.lr}`);
    if (!Array.isArray(h.betas) || h.betas.length !== 2 || !h.betas.every((b) => b >= 0 && b < 1)) {
      throw new Error(`AdamW betas must be two numbers in [0, 1), got ${JSON.stringify(h.betas)}`);
    }
    if (!(h.eps >= 0)) throw new Error(`AdamW eps must be >= 0, got ${h.eps}`);
    if (!(h.weightDecay >= 0)) throw new Error(`AdamW weightDecay must be >= 0, got ${h.weightDecay}`);
  }

  protected update(w: Tensor, g: Tensor, h: AdamWOptions, s: AdamWState | undefined): AdamWState {
    const st = s ?? { step: 0, expAvg: allocFloat32(w.size), expAvgSq: allocFloat32(w.size) };
    st.step += 1;
    getBackend().adamwStep(w.data, g.data, st.expAvg, st.expAvgSq, h.lr, h.betas[0], h.betas[1], h.eps, h.weightDecay, st.step);
    return st;
  }

  protected buffersOf(s: AdamWState): Record<string, Float32Array | null> {
    return { exp_avg: s.expAvg, exp_avg_sq: s.expAvgSq };
  }

  protected restore(step: number, buffers: Record<string, Float32Array>, size: number, name: string): AdamWState {
    const { exp_avg: expAvg, exp_avg_sq: expAvgSq } = buffers;
    if (!expAvg || !expAvgSq) throw new Error(`AdamW state for '${name}' needs exp_avg and exp_avg_sq buffers`);
    if (expAvg.length !== size || expAvgSq.length !== size) throw new Error(`AdamW state for '${name}' has the wrong size`);
    return { step, expAvg, expAvgSq };
  }
}
