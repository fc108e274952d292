// Transposed copies of weights for thin products. On a micro-batch of a few rows, dx = g W runs
// faster as g (W^T)^T with W^T stored (the backend then streams W^T as its large first operand),
// but a copy is only worth making when it is used several times before the weight changes. So
// copies exist only for weights a caller holds: a promise that their values do not
// change until it releases them (a synchronous pipeline stage holds its weights between STEPs,
// when M micro-batches each use them).
//
// `g W` and `g (W^T)^T` are different kernels and need not round alike (on AVX2 they do not). So a
// thin product of a held weight always reads the copy, made on its first use if nothing made it
// earlier: which kernel runs depends on configuration (held or not), never on timing. Making a copy
// ahead of use (prepareHeldCopy, while a worker waits) is only a speed-up.
import { getBackend } from "../backend/index.js";
import { emptyFloat32, type Tensor } from "../tensor/tensor.js";

/** Rows up to which a product counts as thin (larger ones stream the weight efficiently anyway). */
export const THIN_ROWS = 64;

/** Held weights, each with its transposed copy once made. */
const held = new Map<Tensor, { transposed: Float32Array | null }>();
/** A released weight's copy buffer, reused by its next copy (fresh 4 MB buffers cost page faults). */
const spare = new WeakMap<Tensor, Float32Array>();

/**
 * Test instrumentation: PIPEWRIGHT_LAYOUT_CACHE=cold makes no copy ahead of use, =warm makes every
 * held weight's copy when it is held; results must not change either way. Read at every hold (not
 * in the idle loop), so a test can switch it between runs; worker threads see their creation's value.
 */
function cacheMode(): "cold" | "warm" | "auto" {
  const m = process.env.PIPEWRIGHT_LAYOUT_CACHE;
  return m === "cold" || m === "warm" ? m : "auto";
}

let mode: ReturnType<typeof cacheMode> = "auto";

/** Promises that the values of `weights` stay fixed until releaseWeights(weights). */
export function holdWeights(weights: readonly Tensor[]): void {
  mode = cacheMode();
  const warm = mode === "warm";
  for (const w of weights) {
    if (w.rank !== 2 || held.has(w)) continue;
    held.set(w, { transposed: warm ? transposeInto(w, spare.get(w) ?? emptyFloat32(w.size)) : null });
  }
}

/**
 * Makes one copy ahead of use: for a held weight that had one in its previous hold (so it is used
 * in thin products). Returns false when there was nothing left to do.
 */
export function prepareHeldCopy(): boolean {
  if (mode === "cold") return false;
  for (const [w, h] of held) {
    if (h.transposed || !spare.has(w)) continue;
    h.transposed = transposeInto(w, spare.get(w)!);
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

/** W^T ([in, out] for w [out, in]) of a held 2-D weight, made now if no copy exists; null if not held. */
export function heldTranspose(w: Tensor): Float32Array | null {
  const h = held.get(w);
  if (!h) return null;
  h.transposed ??= transposeInto(w, spare.get(w) ?? emptyFloat32(w.size));
  return h.transposed;
}

/** Whether a held weight's copy exists now (for tests and diagnostics; results never depend on it). */
export function heldHasCopy(w: Tensor): boolean {
  return held.get(w)?.transposed != null;
}
