// What REDUCE sums over a physical stage's replicas, laid end to end in one float32 buffer: the
// gradients of its trainable parameters (zeros where a parameter has none), then its BatchNorm
// moments of the mini-batch (count, sums, sums of squares). Every executor sums that buffer
// element-wise in replica order (src/transport/reduce.ts), so threads, processes and inline give the
// same bits. Summing the moments makes every replica commit the running statistics of the whole
// mini-batch at STEP, as one device does: replicas stay identical without a broadcast of buffers, and
// the statistics do not depend on replica 0's shard. The moments travel as float32 (the transports'
// type): about 7 significant digits of each sum instead of float64's, only when there are replicas.
import { Tensor } from "../../tensor/tensor.js";
import type { PhysicalStage } from "./interpreter.js";

function gradientsOf(ps: PhysicalStage): Tensor[] {
  return ps.chunks.flatMap((c) => c.parameters).filter((p) => p.requiresGrad);
}

function momentsOf(ps: PhysicalStage): Float64Array[] {
  return ps.chunks.flatMap((c) => c.statistics);
}

/** The stage's REDUCE buffer (a fresh array). */
export function packReduce(ps: PhysicalStage): Float32Array {
  const grads = gradientsOf(ps), moments = momentsOf(ps);
  const buf = new Float32Array(grads.reduce((n, p) => n + p.size, 0) + moments.reduce((n, m) => n + m.length, 0));
  let off = 0;
  for (const p of grads) { if (p.grad) buf.set(p.grad.data, off); off += p.size; }
  for (const m of moments) { buf.set(m, off); off += m.length; }
  return buf;
}

/** Puts the summed buffer back: gradients (a parameter without one gets a copy) and moments. */
export function unpackReduce(ps: PhysicalStage, buf: Float32Array): void {
  let off = 0;
  for (const p of gradientsOf(ps)) {
    const part = buf.subarray(off, off + p.size);
    if (p.grad) p.grad.data.set(part); else p.grad = new Tensor(part.slice(), [...p.shape]);
    off += p.size;
  }
  for (const m of momentsOf(ps)) { m.set(buf.subarray(off, off + m.length)); off += m.length; }
}

/**
 * REDUCE over an all-reduce of the stage's buffer, synchronous (threads' shared memory) or awaited
 * (MPI ranks): the bytes it reduced, once the sum is back in the stage. Inline sums its copies itself.
 */
export function reduceStage(ps: PhysicalStage, allReduce: (buf: Float32Array) => void | Promise<void>): number | Promise<number> {
  const buf = packReduce(ps);
  if (buf.length === 0) return 0;
  const unpack = (): number => { unpackReduce(ps, buf); return buf.byteLength; };
  const pending = allReduce(buf);
  return pending ? pending.then(unpack) : unpack();
}
