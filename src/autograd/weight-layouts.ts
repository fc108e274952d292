// Transposed copies of weights for thin products. On a micro-batch of a few rows, dx = g W runs
// about 1.7x faster as g (W^T)^T with W^T stored (the backend then streams W^T as its large first
// operand), but a copy is only worth making when it is used several times before the weight
// changes. So copies exist only for weights a caller holds: a promise that their values do not
// change until it releases them (a synchronous pipeline stage holds its weights between STEPs,
// when M micro-batches each use them). A copy is made on a weight's second use, never for the
// first, so a weight used once per step pays nothing; a weight that had a copy in its previous
// hold gets one again ahead of use when a worker would otherwise wait (prepareHeldCopy).
import { getBackend } from "../backend/index.js";
import { emptyFloat32, type Tensor } from "../tensor/tensor.js";

/** Rows up to which a product counts as thin (larger ones stream the weight efficiently anyway). */
export const THIN_ROWS = 64;

/** Held weights: uses since held, and the transposed copy once made. */
const held = new Map<Tensor, { uses: number; transposed: Float32Array | null }>();
/** A released weight's copy buffer, reused by its next copy (fresh 4 MB buffers cost page faults). */
const spare = new WeakMap<Tensor, Float32Array>();

/** Promises that the values of `weights` stay fixed until releaseWeights(weights). */
export function holdWeights(weights: readonly Tensor[]): void {
  for (const w of weights) if (w.rank === 2 && !held.has(w)) held.set(w, { uses: 0, transposed: null });
}

/**
 * Makes one copy ahead of use: for a held weight that had one in its previous hold (so it is used
 * in thin products). Returns false when there was nothing left to do. Copies are exact, so when
 * they are made never changes a result.
 */
export function prepareHeldCopy(): boolean {
  for (const [w, h] of held) {
    if (h.transposed || !spare.has(w)) continue;
    h.transposed = transposeInto(w, spare.get(w)!);
    h.uses = Math.max(h.uses, 1);
    return true;
  }
  return false;
}

function transposeInto(w: Tensor, out: Float32Array): Float32Array {
  getBackend().permute(w.data, w.shape, [1, 0], out, false);
  return out;
}

/** Ends the promise (before the weights change) and drops their copies. */
export function releaseWeights(weights: readonly Tensor[]): void {
  for (const w of weights) {
    const t = held.get(w)?.transposed;
    if (t) spare.set(w, t);
    held.delete(w);
  }
}

/** W^T ([in, out] for w [out, in]) from the second use of a held 2-D weight on; null otherwise. */
export function heldTranspose(w: Tensor): Float32Array | null {
  const h = held.get(w);
  if (!h || ++h.uses < 2) return null;
  h.transposed ??= transposeInto(w, spare.get(w) ?? emptyFloat32(w.size));
  return h.transposed;
}
