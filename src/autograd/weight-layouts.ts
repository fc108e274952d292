// Transposed copies of weights for thin products. On a micro-batch of a few rows, dx = g W runs
// about 1.7x faster as g (W^T)^T with W^T stored (the backend then streams W^T as its large first
// operand), but a copy is only worth making when it is used several times before the weight
// changes. So copies exist only for weights a caller holds: a promise that their values do not
// change until it releases them (a synchronous pipeline stage holds its weights between STEPs,
// when M micro-batches each use them). A copy is made on a weight's second use, never for the
// first, so a weight used once per step pays nothing.
import { getBackend } from "../backend/index.js";
import { emptyFloat32, type Tensor } from "../tensor/tensor.js";

/** Rows up to which a product counts as thin (larger ones stream the weight efficiently anyway). */
export const THIN_ROWS = 64;

/** Held weights: uses since held, and the transposed copy once made. */
const held = new Map<Tensor, { uses: number; transposed: Float32Array | null }>();

/** Promises that the values of `weights` stay fixed until releaseWeights(weights). */
export function holdWeights(weights: readonly Tensor[]): void {
  for (const w of weights) if (w.rank === 2 && !held.has(w)) held.set(w, { uses: 0, transposed: null });
}

/** Ends the promise (before the weights change) and drops their copies. */
export function releaseWeights(weights: readonly Tensor[]): void {
  for (const w of weights) held.delete(w);
}

/** W^T ([in, out] for w [out, in]) from the second use of a held 2-D weight on; null otherwise. */
export function heldTranspose(w: Tensor): Float32Array | null {
  const h = held.get(w);
  if (!h || ++h.uses < 2) return null;
  if (!h.transposed) {
    h.transposed = emptyFloat32(w.size);
    getBackend().permute(w.data, w.shape, [1, 0], h.transposed, false);
  }
  return h.transposed;
}
