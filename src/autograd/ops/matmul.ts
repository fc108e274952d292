// Matrix products: batched matmul with optional transposes, and the fused linear layer x W^T + b.
import { getBackend } from "../../backend/index.js";
import { emptyFloat32, Tensor } from "../../tensor/tensor.js";
import { fmt, numel, sameShape } from "../../tensor/shape.js";
import { gradBuffer, record } from "../engine.js";
import { checkTensor } from "./util.js";
import { heldTranspose, THIN_ROWS } from "../weight-layouts.js";
import { allocFloat32 } from "../../tensor/host-arrays.js";

export interface MatmulOptions {
  /** Use a's last two axes transposed: a is stored [..., k, m]. */
  transA?: boolean;
  /** Use b's last two axes transposed: b is stored [..., n, k] (e.g. q @ k^T). */
  transB?: boolean;
}

/**
 * a [..., m, k] @ b [..., k, n] with identical leading dims, or b 2-D [k, n] shared by every batch
 * entry. Transposes are read from memory directly (no copy).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  checkTensor(a, "matmul", "a");
  checkTensor(b, "matmul", "b");
  const transA = options.transA ?? false;
  const transB = options.transB ?? false;
  const what = `matmul: a ${fmt(a.shape)}${transA ? " (transposed)" : ""} and b ${fmt(b.shape)}${transB ? " (transposed)" : ""}`;
  if (a.rank < 2 || b.rank < 2) throw new Error(`${what}: both operands need at least 2 dimensions`);
  const lead = a.shape.slice(0, -2);
  const bShared = b.rank === 2 && a.rank > 2;
  if (!bShared && !sameShape(lead, b.shape.slice(0, -2))) {
    throw new Error(`${what}: leading (batch) dimensions ${fmt(lead)} and ${fmt(b.shape.slice(0, -2))} differ; b must have the same or be 2-D`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const m = transA ? ac : ar;
  const k = transA ? ar : ac;
  const kb = transB ? bc : br;
  const n = transB ? br : bc;
  if (k !== kb) throw new Error(`${what}: inner dimensions ${k} and ${kb} differ`);
  const batch = numel(lead);
  const be = getBackend();
  const out = Tensor.empty([...lead, m, n]); // overwritten by the product
  be.matmul(a.data, b.data, out.data, batch, m, k, n, transA, transB, false, bShared);

  return record(out, "matmul", [a, b], (g, needs) => {
    let da: Float32Array | null = null;
    let db: Float32Array | null = null;
    if (needs[0]) {
      da = gradBuffer(a.size); // every path below overwrites it
      if (!transA) {
        // dA = g op(B)^T
        be.matmul(g, b.data, da, batch, m, n, k, false, !transB, false, bShared);
      } else if (!bShared) {
        // A stored [k, m]: dA = op(B) g^T
        be.matmul(b.data, g, da, batch, k, n, m, transB, true, false);
      } else {
        // The shared operand can only be the second one: compute (g op(B)^T) = dA^T and transpose it back.
        const t = emptyFloat32(a.size);
        be.matmul(g, b.data, t, batch, m, n, k, false, !transB, false, true);
        be.permute(t, [batch, m, k], [0, 2, 1], da, false);
      }
    }
    if (needs[1]) {
      // Overwritten, except by the per-batch loop which accumulates into zeros.
      db = bShared && transA ? allocFloat32(b.size) : gradBuffer(b.size);
      if (bShared && !transA) {
        // Sum over the batch folds into one product over batch*m rows.
        if (!transB) be.matmul(a.data, g, db, 1, k, batch * m, n, true, false, false);
        else be.matmul(g, a.data, db, 1, n, batch * m, k, true, false, false);
      } else if (bShared) {
        for (let i = 0; i < batch; i++) {
          const ai = a.data.subarray(i * m * k, (i + 1) * m * k);
          const gi = g.subarray(i * m * n, (i + 1) * m * n);
          if (!transB) be.matmul(ai, gi, db, 1, k, m, n, false, false, true);
          else be.matmul(gi, ai, db, 1, n, m, k, true, true, true);
        }
      } else if (!transB) {
        // dB = op(A)^T g
        be.matmul(a.data, g, db, batch, k, m, n, !transA, false, false);
      } else {
        // B stored [n, k]: dB = g^T op(A)
        be.matmul(g, a.data, db, batch, n, m, k, true, transA, false);
      }
    }
    return [da, db];
  });
}

/** x [..., in] @ w^T + b with w [out, in] and b [out] (PyTorch's layout), fused. */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  checkTensor(x, "linear", "x");
  checkTensor(w, "linear", "w");
  const bias = b ?? null;
  if (w.rank !== 2) throw new Error(`linear: x ${fmt(x.shape)} and w ${fmt(w.shape)}: w must be 2-D [out, in]`);
  const [outF, inF] = w.shape;
  if (x.rank < 1 || x.shape[x.rank - 1] !== inF) {
    throw new Error(`linear: x ${fmt(x.shape)} and w ${fmt(w.shape)}: x's last dimension must equal w's in-features ${inF}`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outF)) {
    throw new Error(`linear: w ${fmt(w.shape)} and b ${fmt(bias.shape)}: b must be [${outF}]`);
  }
  const rows = x.size / inF;
  const be = getBackend();
  const out = Tensor.empty([...x.shape.slice(0, -1), outF]); // overwritten by x W^T + b
  be.matmul(x.data, w.data, out.data, 1, rows, inF, outF, false, true, false, false, bias?.data ?? null);

  const inputs = bias ? [x, w, bias] : [x, w];
  // Written over explicit rows so that deferred weight gradients of many calls can be stacked.
  const grad = (g: Float32Array, xData: Float32Array, rows: number, needs: readonly boolean[],
    into?: readonly (Float32Array | null)[]): (Float32Array | null)[] => {
    let dx: Float32Array | null = null;
    let dw: Float32Array | null = null;
    let db: Float32Array | null = null;
    if (needs[0]) {
      dx = gradBuffer(rows * inF); // dx = g W (overwritten)
      const wt = rows <= THIN_ROWS ? heldTranspose(w) : null;
      if (wt) be.matmul(g, wt, dx, 1, rows, outF, inF, false, true, false);
      else be.matmul(g, w.data, dx, 1, rows, outF, inF, false, false, false);
    }
    // Weight gradients accumulate straight into an existing .grad (micro-batch accumulation).
    if (needs[1]) {
      dw = into?.[1] ?? gradBuffer(w.size); // dW = g^T x (accumulated or overwritten)
      be.matmul(g, xData, dw, 1, outF, rows, inF, true, false, dw === into?.[1]);
    }
    if (bias && needs[2]) {
      db = into?.[2] ?? allocFloat32(outF); // db = Σ_rows g
      be.sum(g, 1, rows, outF, db, db === into?.[2]);
    }
    return bias ? [dx, dw, db] : [dx, dw];
  };
  return record(out, "linear", inputs, (g, needs, into) => grad(g, x.data, rows, needs, into),
    { key: w, rows, saved: x.data, backward: grad });
}
