// WGSL for group norm and batch norm over x [n, c, hw]: one invocation per normalised set (a sample's
// group, or a channel) for the statistics and dx; group norm's parameter gradients a `reduction` per
// channel.
import { perItem, reduction, store } from "./wgsl.js";

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

/** dx of one normalised set: rstd (g - mean(g) - x̂ mean(g x̂)), g = dy gamma. `idx(k)` and `gam(k)` are WGSL. */
function normDx(count: string, idx: string, gam: string): string {
  return `
  var sg = 0.0;
  var sgx = 0.0;
  for (var k = 0u; k < ${count}; k++) {
    let e = ${idx};
    let gg = DY[e] * ${gam};
    sg = sg + gg;
    sgx = sgx + gg * (X[e] - mu) * rs;
  }
  let mg = sg / f32(${count});
  let mgx = sgx / f32(${count});
  for (var k = 0u; k < ${count}; k++) {
    let e = ${idx};
    let v = rs * (DY[e] * ${gam} - mg - (X[e] - mu) * rs * mgx);
  ${store("DX[e]", "v")}
  }`;
}

export function groupNormBackwardDxShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["G", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DX", "rw"]],
    ["c", "hw", "groups", "acc"], [], `
  let cg = P.c / P.groups;
  let g = i % P.groups;
  let base = ((i / P.groups) * P.c + g * cg) * P.hw;
  let mu = MEAN[i];
  let rs = RSTD[i];${normDx("cg * P.hw", "base + k", "G[g * cg + k / P.hw]")}`);
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

export function batchNormBackwardShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["G", "r"], ["DY", "r"], ["MEAN", "r"], ["RSTD", "r"], ["DX", "rw"], ["DG", "rw"], ["DB", "rw"]],
    ["bn", "hw", "acc"], [], `
  let count = P.bn * P.hw;
  let mu = MEAN[i];
  let rs = RSTD[i];
  var dg = 0.0;
  var db = 0.0;
  for (var k = 0u; k < count; k++) {
    let e = ${CHANNEL_ELEM};
    dg = dg + DY[e] * (X[e] - mu) * rs;
    db = db + DY[e];
  }
  DG[i] = DG[i] + dg;
  DB[i] = DB[i] + db;${normDx("count", CHANNEL_ELEM, "G[i]")}`);
}
