// WGSL for group norm and batch norm over x [n, c, hw]: one invocation per normalised set (a sample's
// group, or a channel) for the statistics; one workgroup per set for dx (and batch norm's parameter
// gradients); group norm's parameter gradients a `reduction` per channel.
import { perItem, perRow, reduction, store, wgReduce } from "./wgsl.js";

/** Item i = (sample, group); a group's channels are contiguous. */
export function groupNormShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["G", "r"], ["BE", "r"], ["O", "rw"], ["MEAN", "rw"], ["RSTD", "rw"]],
    ["c", "hw", "groups"], ["eps"], `
  let cg = P.c / P.groups;
  let count = cg * P.hw;
  let g = i % P.groups;
  let base = ((i / P.groups) * P.c + g * cg) * P.hw;
  var s = 0.0;
  for (var k = 0u; k < count; k++) { s = s + X[base + k]; }
  let mu = s / f32(count);
  var v = 0.0;
  for (var k = 0u; k < count; k++) { let d = X[base + k] - mu; v = v + d * d; }
  let rs = 1.0 / sqrt(v / f32(count) + P.eps);
  MEAN[i] = mu;
  RSTD[i] = rs;
  for (var k = 0u; k < count; k++) {
    let ch = g * cg + k / P.hw;
    O[base + k] = (X[base + k] - mu) * rs * G[ch] + BE[ch];
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

export function batchNormTrainShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["G", "r"], ["BE", "r"], ["O", "rw"], ["MEAN", "rw"], ["VAR", "rw"], ["RSTD", "rw"]],
    ["bn", "hw"], ["eps"], `
  let count = P.bn * P.hw;
  var s = 0.0;
  for (var k = 0u; k < count; k++) { s = s + X[${CHANNEL_ELEM}]; }
  let mu = s / f32(count);
  var v = 0.0;
  for (var k = 0u; k < count; k++) { let d = X[${CHANNEL_ELEM}] - mu; v = v + d * d; }
  let biased = v / f32(count);
  let rs = 1.0 / sqrt(biased + P.eps);
  MEAN[i] = mu;
  VAR[i] = biased;
  RSTD[i] = rs;
  for (var k = 0u; k < count; k++) { let e = ${CHANNEL_ELEM}; O[e] = (X[e] - mu) * rs * G[i] + BE[i]; }`);
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
