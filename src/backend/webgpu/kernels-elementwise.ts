// WGSL for the element-wise kernels: unary ops and their derivatives, broadcasting binary ops,
// scalar affine maps, the causal mask, gather, permute, copies along an axis and dropout's mask.
import type { BinaryOp, UnaryOp } from "../backend.js";
import { ERFC, perItem, store } from "./wgsl.js";

const UNARY: Record<UnaryOp, string> = {
  relu: "select(0.0, x, x > 0.0 || x != x)",
  gelu: "0.5 * x * erfc_(-x * 0.70710678118654752)",
  tanh: "tanh(x)",
  exp: "exp(x)",
  log: "log(x)",
  neg: "-x",
  sigmoid: "select(exp(x) / (1.0 + exp(x)), 1.0 / (1.0 + exp(-x)), x >= 0.0)",
  sqrt: "sqrt(x)",
};

const DERIVATIVE: Record<UnaryOp, string> = {
  relu: "select(0.0, 1.0, x > 0.0)",
  gelu: "0.5 * erfc_(-x * 0.70710678118654752) + x * 0.39894228040143268 * exp(-0.5 * x * x)",
  tanh: "1.0 - y * y",
  exp: "y",
  log: "1.0 / x",
  neg: "-1.0",
  sigmoid: "y * (1.0 - y)",
  sqrt: "0.5 / y",
};

const BINARY: Record<BinaryOp, string> = { add: "+", sub: "-", mul: "*", div: "/" };

export function unaryShader(wg: number, op: UnaryOp): string {
  return perItem(wg, [["X", "r"], ["O", "rw"]], [], [], `  let x = X[i];\n  O[i] = ${UNARY[op]};`, ERFC);
}

export function unaryBackwardShader(wg: number, op: UnaryOp): string {
  return perItem(wg, [["X", "r"], ["Y", "r"], ["DY", "r"], ["DX", "rw"]], ["acc"], [],
    `  let x = X[i];\n  let y = Y[i];\n${store("DX[i]", `DY[i] * (${DERIVATIVE[op]})`)}`, ERFC);
}

/** S holds the output shape, then a's and b's strides over it (0 on broadcast axes). */
export function binaryShader(wg: number, op: BinaryOp): string {
  return perItem(wg, [["A", "r"], ["B", "r"], ["S", "r", "u32"], ["O", "rw"]], ["rank"], [], `
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = i32(P.rank) - 1; d >= 0; d--) {
    let c = rem % S[d];
    rem = rem / S[d];
    ia += c * S[P.rank + u32(d)];
    ib += c * S[2u * P.rank + u32(d)];
  }
  O[i] = A[ia] ${BINARY[op]} B[ib];`);
}

/** out = alpha x + beta out (beta ignored when useOld is 0), or out = x alpha + beta with `affine`. */
export function axpbyShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"]], ["useOld"], ["alpha", "beta"],
    "  if (P.useOld != 0u) { O[i] = P.alpha * X[i] + P.beta * O[i]; } else { O[i] = P.alpha * X[i]; }");
}

export function affineShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"]], [], ["alpha", "beta"], "  O[i] = X[i] * P.alpha + P.beta;");
}

export function causalMaskShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"]], ["t"], ["value"],
    "  let j = i % P.t;\n  let r = (i / P.t) % P.t;\n  O[i] = select(X[i], P.value, j > r);");
}

export function gatherShader(wg: number): string {
  return perItem(wg, [["T", "r"], ["IDS", "r", "i32"], ["O", "rw"]], ["dim"], [],
    "  O[i] = T[u32(IDS[i / P.dim]) * P.dim + i % P.dim];");
}

/** One invocation per table entry, adding the rows that name it in order (no atomics, fixed order). */
export function scatterAddShader(wg: number): string {
  return perItem(wg, [["DY", "r"], ["IDS", "r", "i32"], ["DT", "rw"]], ["dim", "count"], [], `
  let row = i32(i / P.dim);
  let j = i % P.dim;
  var s = DT[i];
  for (var p = 0u; p < P.count; p++) {
    if (IDS[p] == row) { s = s + DY[p * P.dim + j]; }
  }
  DT[i] = s;`);
}

/** S holds the output shape, then x's stride along each output axis. */
/**
 * Dropout's mask: element i is dropped when counterUint32(k0, k1, i) < below (src/tensor/random.ts,
 * the same function in u32 arithmetic), or always with `all` (p * 2^32 rounds up to 2^32).
 */
export function dropoutMaskShader(wg: number): string {
  return perItem(wg, [["M", "rw"]], ["k0", "k1", "below", "all"], ["keep"], `
  let r = mix32(mix32(i ^ P.k0) + P.k1);
  M[i] = select(P.keep, 0.0, r < P.below || P.all != 0u);`, `
fn mix32(v: u32) -> u32 {
  var x = v ^ (v >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  return x ^ (x >> 16u);
}
`);
}

/** Item i of out [outer, dstSize, inner]: copied from x inside the range, else zeroed or kept (AxisCopy). */
export function copyAxisShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"]], ["inner", "len", "srcSize", "srcStart", "dstSize", "dstStart", "zero"], [], `
  let k = i % P.inner;
  let j = (i / P.inner) % P.dstSize;
  let o = i / (P.inner * P.dstSize);
  if (j >= P.dstStart && j < P.dstStart + P.len) {
    O[i] = X[(o * P.srcSize + P.srcStart + j - P.dstStart) * P.inner + k];
  } else if (P.zero != 0u) {
    O[i] = 0.0;
  }`);
}

export function permuteShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["S", "r", "u32"], ["O", "rw"]], ["rank", "acc"], [], `
  var rem = i;
  var off = 0u;
  for (var d = i32(P.rank) - 1; d >= 0; d--) {
    off += (rem % S[d]) * S[P.rank + u32(d)];
    rem = rem / S[d];
  }
${store("O[i]", "X[off]")}`);
}
