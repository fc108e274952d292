// WGSL for group norm and batch norm over x [n, c, hw]: one workgroup per normalised set (a sample's
// group, or a channel) for the statistics and for dx (and batch norm's parameter gradients), the
// sums in fixed trees; group norm's parameter gradients a `reduction` per channel.
import { perItem, perRow, reduction, store, wgReduce } from "./wgsl.js";

/**
 * The mean `mu`, biased variance `biased` and `rs` = 1/sqrt(biased + eps) of set i's `count`
 * elements X[idx(k)], one workgroup (two fixed trees); then `body` for each of the invocation's k.
 */
function normStats(wg: number, count: string, idx: string, body: string): string {
  return `
  var ps = 0.0;
  for (var k = lid; k < ${count}; k += ${wg}u) { ps = ps + X[${idx}]; }
${wgReduce(wg, "sum", "ps", "total", 0)}
  let mu = total / f32(${count});
  var pv = 0.0;
  for (var k = lid; k < ${count}; k += ${wg}u) { let d = X[${idx}] - mu; pv = pv + d * d; }
${wgReduce(wg, "sum", "pv", "squares", 1)}
  let biased = squares / f32(${count});
  let rs = 1.0 / sqrt(biased + P.eps);
  for (var k = lid; k < ${count}; k += ${wg}u) {
    let e = ${idx};
${body}
  }`;
}

/** Set i = (sample, group), one workgroup; a group's channels are contiguous. */
export function groupNormShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["G", "r"], ["BE", "r"], ["O", "rw"], ["MEAN", "rw"], ["RSTD", "rw"]],
    ["c", "hw", "groups"], ["eps"], 2, `
  let i = row;
  let cg = P.c / P.groups;
  let g = i % P.groups;
  let base = ((i / P.groups) * P.c + g * cg) * P.hw;${normStats(wg, "cg * P.hw", "base + k", `
    let ch = g * cg + k / P.hw;
    O[e] = (X[e] - mu) * rs * G[ch] + BE[ch];`)}
  if (lid == 0u) {
    MEAN[i] = mu;
    RSTD[i] = rs;
  }`);
}

/**
 * dx of normalised set i, one workgroup: rstd (g - mean(g) - x̂ mean(g x̂)), g = dy gamma, the sums
 * in fixed trees; with `params` also dgamma[i] += Σ dy x̂ and dbeta[i] += Σ dy (batch norm, where a
 * set is a channel). `idx(k)` and `gam(k)` are WGSL.
 */
function normDx(wg: number, count: string, idx: string, gam: string, params: boolean): string {
  const sums = params ? ["sg", "sgx", "dg", "db"] : ["sg", "sgx"];
  return `
  ${sums.map((n) => `var ${n}_p = 0.0;`).join(" ")}
  for (var k = lid; k < ${count}; k += ${wg}u) {
    let e = ${idx};
    let gg = DY[e] * ${gam};
    sg_p = sg_p + gg;
    sgx_p = sgx_p + gg * (X[e] - mu) * rs;${params ? `
    dg_p = dg_p + DY[e] * (X[e] - mu) * rs;
    db_p = db_p + DY[e];` : ""}
  }
${sums.map((n, s) => wgReduce(wg, "sum", `${n}_p`, n, s)).join("\n")}${params ? `
  if (lid == 0u) {
    DG[i] = DG[i] + dg;
    DB[i] = DB[i] + db;
  }` : ""}
  let mg = sg / f32(${count});
  let mgx = sgx / f32(${count});
  for (var k = lid; k < ${count}; k += ${wg}u) {
    let e = ${idx};
    let v = rs * (DY[e] * ${gam} - mg - (X[e] - mu) * rs * mgx);
  ${store("DX[e]", "v")}
  }`;
}

export function groupNormBackwardDxShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["G", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DX", "rw"]],
    ["c", "hw", "groups", "acc"], [], 2, `
  let i = row;
  let cg = P.c / P.groups;
  let g = i % P.groups;
  let base = ((i / P.groups) * P.c + g * cg) * P.hw;
  let mu = MEAN[i];
  let rs = RSTD[i];${normDx(wg, "cg * P.hw", "base + k", "G[g * cg + k / P.hw]", false)}`);
}

/** Channel o: dgamma[o] += Σ dy x̂, dbeta[o] += Σ dy over k = (sample, position). */
export function groupNormBackwardParamsShader(wg: number, lanes: number): string {
  return reduction(wg, lanes, [["X", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DG", "rw"], ["DB", "rw"]],
    ["bn", "hw", "groups"], [], {
      setup: "  let g = o / (P.n / P.groups);", len: "P.bn * P.hw",
      each: `
    let s = k / P.hw;
    let e = (s * P.n + o) * P.hw + k % P.hw;
    let xh = (X[e] - MEAN[s * P.groups + g]) * RSTD[s * P.groups + g];`,
      terms: { dg: "DY[e] * xh", db: "DY[e]" },
      finish: "    DG[o] = DG[o] + dg;\n    DB[o] = DB[o] + db;" });
}

/** Item i is a channel; element k of its set is sample k / hw, position k % hw. */
const CHANNEL_ELEM = "(k / P.hw * P.n + i) * P.hw + k % P.hw";

/** Channel i, one workgroup. */
export function batchNormTrainShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["G", "r"], ["BE", "r"], ["O", "rw"], ["MEAN", "rw"], ["VAR", "rw"], ["RSTD", "rw"]],
    ["bn", "hw"], ["eps"], 2, `
  let i = row;${normStats(wg, "P.bn * P.hw", CHANNEL_ELEM, "    O[e] = (X[e] - mu) * rs * G[i] + BE[i];")}
  if (lid == 0u) {
    MEAN[i] = mu;
    VAR[i] = biased;
    RSTD[i] = rs;
  }`);
}

/** Item i is an element of x [n, c, hw]. */
export function batchNormInferenceShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["G", "r"], ["BE", "r"], ["MEAN", "r"], ["VAR", "r"], ["O", "rw"]], ["c", "hw"], ["eps"], `
  let ch = (i / P.hw) % P.c;
  let rs = 1.0 / sqrt(VAR[ch] + P.eps);
  O[i] = (X[i] - MEAN[ch]) * rs * G[ch] + BE[ch];`);
}

/** Channel i, one workgroup. */
export function batchNormBackwardShader(wg: number): string {
  return perRow(wg, [["X", "r"], ["G", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DX", "rw"], ["DG", "rw"], ["DB", "rw"]],
    ["bn", "hw", "acc"], [], 4, `
  let i = row;
  let count = P.bn * P.hw;
  let mu = MEAN[i];
  let rs = RSTD[i];${normDx(wg, "count", CHANNEL_ELEM, "G[i]", true)}`);
}
