// Worker-side gradient and buffer synchronisation between replicas: the piece a data-parallel
// replica (data-parallel-worker.ts) and, later, a replicated pipeline stage (PipeTransformer's AutoDP,
// from a WeightHooks.beforeStep) call between backward and the optimizer step.
//
// Gradients of all trainable parameters (requiresGrad; frozen ones are skipped) are laid out in one
// flat vector in parameter order. With shared-memory collectives whose slot holds the whole vector,
// the gradients are copied straight into this rank's slot and the reduced values straight back into
// `param.grad`: two local memcpys per step, no message carries gradient data. A parameter without a
// gradient on this replica contributes zeros and receives the reduced gradient (all replicas of one
// model reach the same parameters, so this only matters for data-dependent graphs).
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
   * replica's loss is already scaled by 1 / global batch, as DataParallel does). Blocking.
   *
   * With `alias` (shared-memory groups only), the gradients become views of the group's shared
   * result region instead of being copied back (saves one pass over all gradients). They are then
   * valid only until this rank enters its next collective: run the optimizer step, then drop them
   * (optimizer.zeroGrad()) before any other collective.
   */
  allReduceSync(op: ReduceOp = "sum", alias = false): void {
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
    off = 0;
    for (const [, p] of this.params) {
      const part = reduced.subarray(off, off + p.size);
      if (alias && direct) p.grad = new TensorClass(part, [...p.shape]);
      else if (p.grad) p.grad.data.set(part);
      else p.grad = new TensorClass(part.slice(), [...p.shape]);
      off += p.size;
    }
  }
}

/**
 * Makes every replica's buffers (BatchNorm running statistics) equal to rank `root`'s, like
 * PyTorch DDP's broadcast_buffers. One broadcast of all buffers concatenated.
 */
export function broadcastBuffersSync(buffers: readonly (readonly [string, Tensor])[], comm: SyncCollectives, root = 0): void {
  const n = buffers.reduce((s, [, b]) => s + b.size, 0);
  if (n === 0) return;
  const flat = new Float32Array(n);
  let off = 0;
  for (const [, b] of buffers) { flat.set(b.data, off); off += b.size; }
  comm.broadcastSync(flat, root);
  off = 0;
  for (const [, b] of buffers) { b.data.set(flat.subarray(off, off + b.size)); off += b.size; }
}

/** An asynchronous all-reduce (MPI's collectives: src/transport/mpi/collectives.ts). */
export interface AsyncAllReduce { allReduce(buf: Float32Array, op: ReduceOp): Promise<void> }

/** Gradients of `params` laid end to end (zeros where a parameter has none). */
function flatGradients(params: readonly Tensor[]): Float32Array {
  const buf = new Float32Array(params.reduce((t, p) => t + p.size, 0));
  let off = 0;
  for (const p of params) { if (p.grad) buf.set(p.grad.data, off); off += p.size; }
  return buf;
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

/**
 * Sums `params`' gradients over the group's ranks (its fixed rank order), in place, as
 * GradientAllReducer does on shared memory: a parameter without a gradient contributes zeros and
 * receives the sum. For replicas in separate processes.
 */
export async function allReduceGradients(params: readonly Tensor[], comm: AsyncAllReduce): Promise<void> {
  const buf = flatGradients(params);
  if (buf.length === 0) return;
  await comm.allReduce(buf, "sum");
  setGradients(params, buf);
}

/** allReduceGradients over synchronous collectives (replicas as threads): the same sums, bit for bit. */
export function allReduceGradientsSync(params: readonly Tensor[], comm: SyncCollectives): void {
  const buf = flatGradients(params);
  if (buf.length === 0 || comm.size === 1) return;
  comm.allReduceSync(buf, "sum");
  setGradients(params, buf);
}
