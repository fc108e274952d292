// WGSL for the row kernels: (log-)softmax and its backward, layer norm and its dx run one workgroup
// per row (a tree reduction within it), cross-entropy's loss and the correct count one workgroup in
// all; sum and max over the middle axis and layer norm's parameter gradients a workgroup per output
// for long sums, else an invocation; cross-entropy's backward and the optimizer steps one per element.
import { perItem, perRow, reduction, store, wgReduce } from "./wgsl.js";

/** x as [outer, mid, inner]; output o is (o / inner, o % inner). */
export function sumShader(wg: number, lanes: number): string {
  return reduction(wg, lanes, [["X", "r"], ["O", "rw"]], ["mid", "inner", "acc"], [], {
    setup: "  let base = (o / P.inner) * P.mid * P.inner + o % P.inner;", len: "P.mid",
    terms: { s: "X[base + k * P.inner]" }, finish: store("O[o]", "s") });
}

const NONE = "0xffffffffu";
/**
 * Whether candidate (av, ai) comes before (bv, bi) for max with argmax: the first NaN, else the first
 * maximum. A total order on (value, index), so any grouping of the comparisons gives the sequential
 * scan's answer exactly. Index NONE is no candidate.
 */
const BEATS = `
var<workgroup> bestAt: array<u32, WG>;
fn beats(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
  if (ai == ${NONE}) { return false; }
  if (bi == ${NONE}) { return true; }
  let an = av != av;
  let bn = bv != bv;
  if (an || bn) { return an && (!bn || ai < bi); }
  return av > bv || (av == bv && ai < bi);
}
`;

/** Max with argmax over the middle axis: an invocation per output, or (lanes = wg) a workgroup per output. */
export function maxShader(wg: number, lanes: number): string {
  const decls = [["X", "r"], ["O", "rw"], ["AM", "rw", "i32"]] as const;
  if (lanes === 1) {
    return perItem(wg, decls, ["mid", "inner"], [], `
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
  const steps: string[] = [];
  for (let s = wg / 2; s >= 1; s /= 2) {
    steps.push(`  if (lid < ${s}u && beats(red0[lid + ${s}u], bestAt[lid + ${s}u], red0[lid], bestAt[lid])) {
    red0[lid] = red0[lid + ${s}u];
    bestAt[lid] = bestAt[lid + ${s}u];
  }
  workgroupBarrier();`);
  }
  return perRow(wg, decls, ["mid", "inner"], [], 1, `
  let base = (row / P.inner) * P.mid * P.inner + row % P.inner;
  var bv = 0.0;
  var bi = ${NONE};
  for (var m = lid; m < P.mid; m += ${wg}u) {
    let v = X[base + m * P.inner];
    if (beats(v, m, bv, bi)) { bv = v; bi = m; }
  }
  red0[lid] = bv;
  bestAt[lid] = bi;
  workgroupBarrier();
${steps.join("\n")}
  if (lid == 0u) {
    O[row] = red0[0];
    AM[row] = i32(bestAt[0]);
  }`, BEATS.replace("WG", String(wg)));
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

/** dx for a row (one workgroup): rstd (g - mean(g) - x̂ mean(g x̂)) with g = dy gamma, x̂ = (x - mean) rstd. */
export function layerNormBackwardDxShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["G", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DX", "rw"]], ["cols", "acc"], [], 2, `
  let b = row * P.cols;
  let mu = MEAN[row];
  let rs = RSTD[row];
  var pg = 0.0;
  var pgx = 0.0;
  ${strided(wg, "let g = DY[b + j] * G[j]; pg = pg + g; pgx = pgx + g * (X[b + j] - mu) * rs;")}
${wgReduce(wg, "sum", "pg", "sg", 0)}
${wgReduce(wg, "sum", "pgx", "sgx", 1)}
  let mg = sg / f32(P.cols);
  let mgx = sgx / f32(P.cols);
  ${strided(wg, `let v = rs * (DY[b + j] * G[j] - mg - (X[b + j] - mu) * rs * mgx);
  ${store("DX[b + j]", "v")}`)}`);
}

/** Column o of P.n: dgamma[o] += Σ_rows dy x̂, dbeta[o] += Σ_rows dy. */
export function layerNormBackwardParamsShader(wg: number, lanes: number): string {
  return reduction(wg, lanes, [["X", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DG", "rw"], ["DB", "rw"]], ["rows"], [], {
    setup: "", len: "P.rows", each: "    let e = k * P.n + o;",
    terms: { dg: "DY[e] * (X[e] - MEAN[k]) * RSTD[k]", db: "DY[e]" },
    finish: "    DG[o] = DG[o] + dg;\n    DB[o] = DB[o] + db;" });
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
