// Gradient synchronisation between replicas. GradientAllReducer: the gradients of a set of
// trainable parameters (requiresGrad; frozen ones are skipped) laid out in one flat vector in
// parameter order; with shared-memory collectives whose slot holds the whole vector, they are copied
// straight into this rank's slot and the reduced values straight back (sequence parallelism's
// replicated gradients). A parameter without a gradient contributes zeros and receives the reduced
// gradient.
import type { Tensor } from "../tensor/tensor.js";
import { Tensor as TensorClass } from "../tensor/tensor.js";
import type { ReduceOp, SyncCollectives } from "../transport/types.js";
import { ShmCollectives } from "../transport/shm-collectives.js";

export class GradientAllReducer {
  readonly params: readonly (readonly [string, Tensor])[];
  /** Total gradient elements. */
  readonly size: number;
  private flat: Float32Array | null = null;

  constructor(params: readonly (readonly [string, Tensor])[], private readonly comm: SyncCollectives) {
    this.params = params.filter(([, p]) => p.requiresGrad);
    this.size = this.params.reduce((s, [, p]) => s + p.size, 0);
  }

  /**
   * Replaces every parameter's gradient by the `op` over replicas (rank order; "sum" when each
   * replica's loss is already scaled by 1 / global batch). Blocking.
   */
  allReduceSync(op: ReduceOp = "sum"): void {
    if (this.comm.size === 1) {
      // Sum and mean over one replica are its own gradient: nothing to move.
      for (const [, p] of this.params) p.grad ??= new TensorClass(new Float32Array(p.size), [...p.shape]);
      return;
    }
    const direct = this.comm instanceof ShmCollectives && this.comm.handle.capacity >= this.size;
    const buf = direct ? (this.comm as ShmCollectives).slot : (this.flat ??= new Float32Array(this.size));
    let off = 0;
    for (const [, p] of this.params) {
      if (p.grad) buf.set(p.grad.data, off);
      else buf.fill(0, off, off + p.size);
      off += p.size;
    }
    const reduced = direct ? (this.comm as ShmCollectives).allReduceSlotSync(this.size, op) : (this.comm.allReduceSync(buf, op), buf);
    setGradients(this.params.map(([, p]) => p), reduced);
  }
}

/** Puts the reduced `buf` back into the gradients (a parameter without one gets a copy). */
function setGradients(params: readonly Tensor[], buf: Float32Array): void {
  let off = 0;
  for (const p of params) {
    const part = buf.subarray(off, off + p.size);
    if (p.grad) p.grad.data.set(part); else p.grad = new TensorClass(part.slice(), [...p.shape]);
    off += p.size;
  }
}
