// Megatron's two tensor-parallel conjugate operators as autograd ops:
//   f = copyToTensorParallel:     forward identity,   backward all-reduce (sum) of the gradient
//   g = reduceFromTensorParallel: forward all-reduce, backward identity
// f enters a tensor-parallel region whose input is replicated (every rank holds the same x and each
// rank's part of the region depends on all of x, so dL/dx is the sum of the ranks' partial
// gradients); g leaves it (each rank holds a partial sum of the output).
//
// Collectives are blocking and every rank must enter them in the same order: run the same graph and
// the same backward() call (same roots, same `leaves`) on every rank of the group.
import { record } from "../autograd/engine.js";
import { Tensor } from "../tensor/tensor.js";
import type { SyncCollectives } from "../transport/types.js";

/** f: identity forward (shares x's memory), gradient all-reduced over the group in backward. */
export function copyToTensorParallel(x: Tensor, comm: SyncCollectives): Tensor {
  if (comm.size === 1) return x;
  const out = new Tensor(x.data, x.shape);
  return record(out, "tp_copy", [x], (g, needs) => {
    if (!needs[0]) return [null];
    const d = g.slice();
    comm.allReduceSync(d, "sum");
    return [d];
  });
}

/** g: all-reduce (rank-ordered float32 sum) forward, identity backward. */
export function reduceFromTensorParallel(x: Tensor, comm: SyncCollectives): Tensor {
  if (comm.size === 1) return x;
  const d = x.data.slice();
  comm.allReduceSync(d, "sum");
  return record(new Tensor(d, x.shape), "tp_reduce", [x], (g, needs) => [needs[0] ? g : null]);
}
