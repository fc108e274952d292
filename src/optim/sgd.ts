// Stochastic gradient descent exactly as torch.optim.SGD (momentum, dampening, Nesterov, L2 weight decay).
import type { Tensor } from "../tensor/tensor.js";
import { getBackend } from "../backend/index.js";
import { Optimizer, type ParamsInput } from "./optimizer.js";
import { allocFloat32 } from "../tensor/host-arrays.js";

export interface SgdOptions { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }
interface SgdState { step: number; momentumBuffer: Float32Array | null }

export const SGD_DEFAULTS: Omit<SgdOptions, "lr"> = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };

export class SGD extends Optimizer<SgdOptions, SgdState> {
  readonly kind = "sgd";

  constructor(params: ParamsInput<SgdOptions>, options: Partial<SgdOptions> & { lr: number }) {
    super(params, { ...SGD_DEFAULTS, ...options });
  }

  protected validate(h: SgdOptions): void {
    if (!(h.lr >= 0)) throw new Error(`SGD lr must be >= 0, got ${h.lr}`);
    if (!(h.momentum >= 0)) throw new Error(`SGD momentum must be >= 0, got ${h.momentum}`);
    if (!(h.weightDecay >= 0)) throw new Error(`SGD weightDecay must be >= 0, got ${h.weightDecay}`);
    if (!(h.dampening >= 0 && h.dampening <= 1)) throw new Error(`SGD dampening must be in [0, 1], got ${h.dampening}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new Error(`SGD nesterov needs momentum > 0 and dampening 0, got momentum ${h.momentum}, dampening ${h.dampening}`);
    }
  }

  protected update(w: Tensor, g: Tensor, h: SgdOptions, s: SgdState | undefined): SgdState {
    const first = !s?.momentumBuffer;
    const buf = h.momentum !== 0 ? (s?.momentumBuffer ?? allocFloat32(w.size)) : null;
    getBackend().sgdStep(w.data, g.data, buf, h.lr, h.momentum, h.dampening, h.weightDecay, h.nesterov, first);
    return { step: (s?.step ?? 0) + 1, momentumBuffer: buf };
  }

  protected buffersOf(s: SgdState): Record<string, Float32Array | null> {
    return { momentum_buffer: s.momentumBuffer };
  }

  protected restore(step: number, buffers: Record<string, Float32Array>): SgdState {
    return { step, momentumBuffer: buffers.momentum_buffer ?? null };
  }
}
