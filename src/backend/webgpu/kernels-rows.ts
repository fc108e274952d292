// WGSL for the row kernels: (log-)softmax and its backward and layer norm run one workgroup per row
// (a tree reduction within it), cross-entropy's loss and the correct count one workgroup in all; sum and max over the middle axis, layer norm's backward, one
// invocation per output; cross-entropy's backward and the optimizer steps one per element.
import { perItem, perRow, store, wgReduce } from "./wgsl.js";

/** x as [outer, mid, inner]; item i is output (i / inner, i % inner). */
export function sumShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"]], ["mid", "inner", "acc"], [], `
  let base = (i / P.inner) * P.mid * P.inner + i % P.inner;
  var s = 0.0;
  for (var m = 0u; m < P.mid; m++) { s = s + X[base + m * P.inner]; }
${store("O[i]", "s")}`);
}

export function maxShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"], ["AM", "rw", "i32"]], ["mid", "inner"], [], `
  let base = (i / P.inner) * P.mid * P.inner + i % P.inner;
  var best = X[base];
  var at = 0;
  for (var m = 1u; m < P.mid; m++) {
    let v = X[base + m * P.inner];
    if (v > best || (v != v && best == best)) { best = v; at = i32(m); }
  }
  O[i] = best;
  AM[i] = at;`);
}

/** `body` for this invocation's columns of the row: j = lid, lid + wg, ... */
function strided(wg: number, body: string): string {
  return `for (var j = lid; j < P.cols; j += ${wg}u) { ${body} }`;
}

/** Row `row` of x [rows, cols]; an all -inf row uses 0 as its maximum, giving NaN like the reference. */
export function softmaxShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["O", "rw"]], ["cols", "log"], [], 2, `
  let b = row * P.cols;
  // Each invocation starts from an element of the row (max is idempotent, so repeats do no harm).
  var pm = X[b + min(lid, P.cols - 1u)];
  ${strided(wg, "pm = max(pm, X[b + j]);")}
${wgReduce(wg, "max", "pm", "rowMax", 0)}
  var mx = rowMax;
  if (bitcast<u32>(mx) == 0xff800000u) { mx = 0.0; }
  var ps = 0.0;
  ${strided(wg, "ps = ps + exp(X[b + j] - mx);")}
${wgReduce(wg, "sum", "ps", "total", 1)}
  if (P.log != 0u) {
    let lse = mx + log(total);
    ${strided(wg, "O[b + j] = X[b + j] - lse;")}
  } else {
    ${strided(wg, "O[b + j] = exp(X[b + j] - mx) / total;")}
  }`);
}

export function softmaxBackwardShader(wg: number): string {
  return perRow(wg, [["Y", "r"], ["DY", "r"], ["DX", "rw"]], ["cols", "log", "acc"], [], 1, `
  let b = row * P.cols;
  var ps = 0.0;
  ${strided(wg, "ps = ps + select(DY[b + j] * Y[b + j], DY[b + j], P.log != 0u);")}
${wgReduce(wg, "sum", "ps", "total", 0)}
  ${strided(wg, `let v = select(Y[b + j] * (DY[b + j] - total), DY[b + j] - exp(Y[b + j]) * total, P.log != 0u);
    ${store("DX[b + j]", "v")}`)}`);
}

/** Cross-entropy's loss, -Σ_rows LP[row, T[row]], in one workgroup (a fixed tree: bits set by wg). */
export function pickedSumShader(wg: number): string {
  return perRow(wg, [["LP", "r"], ["T", "r", "i32"], ["L", "rw"]], ["rows", "cols"], [], 1, `
  var ps = 0.0;
  for (var r = lid; r < P.rows; r += ${wg}u) { ps = ps - LP[r * P.cols + u32(T[r])]; }
${wgReduce(wg, "sum", "ps", "total", 0)}
  if (lid == 0u) { L[0] = total; }`);
}

/**
 * Rows of x [rows, cols] whose first maximum (by >, so a NaN never wins after column 0) is at the
 * target, counted in one workgroup: the host's countCorrect without reading x back.
 */
export function countCorrectShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["T", "r", "i32"], ["C", "rw"]], ["rows", "cols"], [], 1, `
  var hits = 0.0;
  for (var r = lid; r < P.rows; r += ${wg}u) {
    let b = r * P.cols;
    var best = 0u;
    for (var j = 1u; j < P.cols; j++) { if (X[b + j] > X[b + best]) { best = j; } }
    if (i32(best) == T[r]) { hits = hits + 1.0; }
  }
${wgReduce(wg, "sum", "hits", "total", 0)}
  if (lid == 0u) { C[0] = total; }`);
}

export function crossEntropyBackwardShader(wg: number): string {
  return perItem(wg, [["LP", "r"], ["T", "r", "i32"], ["DX", "rw"]], ["cols", "acc"], ["scale"], `
  let j = i32(i % P.cols);
  let v = P.scale * (exp(LP[i]) - select(0.0, 1.0, j == T[i / P.cols]));
${store("DX[i]", "v")}`);
}

export function layerNormShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["G", "r"], ["BE", "r"], ["O", "rw"], ["MEAN", "rw"], ["RSTD", "rw"]], ["cols"], ["eps"], 2, `
  let b = row * P.cols;
  var ps = 0.0;
  ${strided(wg, "ps = ps + X[b + j];")}
${wgReduce(wg, "sum", "ps", "total", 0)}
  let mu = total / f32(P.cols);
  var pv = 0.0;
  ${strided(wg, "let d = X[b + j] - mu; pv = pv + d * d;")}
${wgReduce(wg, "sum", "pv", "squares", 1)}
  let rs = 1.0 / sqrt(squares / f32(P.cols) + P.eps);
  if (lid == 0u) {
    MEAN[row] = mu;
    RSTD[row] = rs;
  }
  ${strided(wg, "O[b + j] = (X[b + j] - mu) * rs * G[j] + BE[j];")}`);
}

/** dx for row i: rstd (g - mean(g) - x̂ mean(g x̂)) with g = dy gamma, x̂ = (x - mean) rstd. */
export function layerNormBackwardDxShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["G", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DX", "rw"]], ["cols", "acc"], [], `
  let b = i * P.cols;
  let mu = MEAN[i];
  let rs = RSTD[i];
  var sg = 0.0;
  var sgx = 0.0;
  for (var j = 0u; j < P.cols; j++) {
    let g = DY[b + j] * G[j];
    sg = sg + g;
    sgx = sgx + g * (X[b + j] - mu) * rs;
  }
  let mg = sg / f32(P.cols);
  let mgx = sgx / f32(P.cols);
  for (var j = 0u; j < P.cols; j++) {
    let v = rs * (DY[b + j] * G[j] - mg - (X[b + j] - mu) * rs * mgx);
  ${store("DX[b + j]", "v")}
  }`);
}

/** Column i: dgamma[i] += Σ_rows dy x̂, dbeta[i] += Σ_rows dy. */
export function layerNormBackwardParamsShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DG", "rw"], ["DB", "rw"]], ["rows"], [], `
  var dg = 0.0;
  var db = 0.0;
  for (var r = 0u; r < P.rows; r++) {
    let k = r * P.n + i;
    dg = dg + DY[k] * (X[k] - MEAN[r]) * RSTD[r];
    db = db + DY[k];
  }
  DG[i] = DG[i] + dg;
  DB[i] = DB[i] + db;`);
}

export function sgdShader(wg: number): string {
  return perItem(wg, [["W", "rw"], ["G", "r"], ["V", "rw"]], ["useV", "nesterov", "first"],
    ["lr", "momentum", "dampening", "wd"], `
  let g = G[i] + P.wd * W[i];
  var step = g;
  if (P.useV != 0u) {
    var v = g;
    if (P.first == 0u) { v = P.momentum * V[i] + (1.0 - P.dampening) * g; }
    V[i] = v;
    step = select(v, g + P.momentum * v, P.nesterov != 0u);
  }
  W[i] = W[i] - P.lr * step;`);
}

export function adamwShader(wg: number): string {
  return perItem(wg, [["W", "rw"], ["G", "r"], ["M", "rw"], ["V", "rw"]], [],
    ["beta1", "beta2", "eps", "decay", "stepSize", "bc2Sqrt"], `
  let g = G[i];
  let m = P.beta1 * M[i] + (1.0 - P.beta1) * g;
  let v = P.beta2 * V[i] + (1.0 - P.beta2) * g * g;
  M[i] = m;
  V[i] = v;
  W[i] = W[i] * P.decay - (P.stepSize * m) / (sqrt(v) / P.bc2Sqrt + P.eps);`);
}
