// WGSL for convolution and pooling over NCHW images, one invocation per output element (the weight
// and bias gradients, long sums over few outputs, a workgroup per output where a sum is long), and
// the im2col and col2im passes around the matmul that the forward and data gradient use. The
// uniform block names the image geometry bn, bc, bh, bw (input), bo (output channels), kh, kw, sh,
// sw, ph, pw, oh, ow (`n` is taken by the item count).
import type { ConvParams, PoolParams } from "../backend.js";
import { perItem, reduction, store } from "./wgsl.js";

const GEOMETRY = ["bn", "bc", "bh", "bw", "bo", "kh", "kw", "sh", "sw", "ph", "pw", "oh", "ow"];

/** The geometry fields' values, in GEOMETRY's order (pooling has o = c). */
export function geometry(p: ConvParams | PoolParams): number[] {
  return [p.n, p.c, p.h, p.w, "o" in p ? p.o : p.c, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.oh, p.ow];
}

/** Output (ni, oi, y, x) from item i of an [n, o, oh, ow] array. */
const OUT_INDEX = `
  let x = i % P.ow;
  let y = (i / P.ow) % P.oh;
  let oi = (i / (P.ow * P.oh)) % P.bo;
  let ni = i / (P.ow * P.oh * P.bo);`;

/** Input (ni, ci, iy, ix) from item i of an [n, c, h, w] array. */
const IN_INDEX = `
  let ix = i32(i % P.bw);
  let iy = i32((i / P.bw) % P.bh);
  let ci = (i / (P.bw * P.bh)) % P.bc;
  let ni = i / (P.bw * P.bh * P.bc);`;

export function conv2dShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["WT", "r"], ["BIAS", "r"], ["O", "rw"]], [...GEOMETRY, "hasBias"], [], `${OUT_INDEX}
  var s = 0.0;
  if (P.hasBias != 0u) { s = BIAS[oi]; }
  for (var ci = 0u; ci < P.bc; ci++) {
    for (var ki = 0u; ki < P.kh; ki++) {
      let iy = i32(y * P.sh + ki) - i32(P.ph);
      if (iy < 0 || iy >= i32(P.bh)) { continue; }
      for (var kj = 0u; kj < P.kw; kj++) {
        let ix = i32(x * P.sw + kj) - i32(P.pw);
        if (ix < 0 || ix >= i32(P.bw)) { continue; }
        s = s + X[((ni * P.bc + ci) * P.bh + u32(iy)) * P.bw + u32(ix)] * WT[((oi * P.bc + ci) * P.kh + ki) * P.kw + kj];
      }
    }
  }
  O[i] = s;`);
}

/**
 * im2col: COLS [c*kh*kw, n*oh*ow], row (ci, ki, kj), column (ni, y, x), holds the input value the
 * window at (ni, y, x) sees through kernel tap (ci, ki, kj), 0 in the padding. Then the convolution
 * is one matmul W [o, c*kh*kw] x COLS, whose k products are summed in order (the same for any tile).
 */
export function im2colShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["COLS", "rw"]], GEOMETRY, [], `
  let cols = P.bn * P.oh * P.ow;
  let col = i % cols;
  let r = i / cols;
  let x = col % P.ow;
  let y = (col / P.ow) % P.oh;
  let ni = col / (P.ow * P.oh);
  let kj = r % P.kw;
  let ki = (r / P.kw) % P.kh;
  let ci = r / (P.kw * P.kh);
  let iy = i32(y * P.sh + ki) - i32(P.ph);
  let ix = i32(x * P.sw + kj) - i32(P.pw);
  var v = 0.0;
  if (iy >= 0 && iy < i32(P.bh) && ix >= 0 && ix < i32(P.bw)) {
    v = X[((ni * P.bc + ci) * P.bh + u32(iy)) * P.bw + u32(ix)];
  }
  COLS[i] = v;`);
}

/** The matmul's [o, n*oh*ow] result to the output [n, o, oh, ow], adding the bias. */
export function convOutputShader(wg: number): string {
  return perItem(wg, [["T", "r"], ["BIAS", "r"], ["O", "rw"]], [...GEOMETRY, "hasBias"], [], `${OUT_INDEX}
  var s = T[(oi * P.bn + ni) * P.oh * P.ow + y * P.ow + x];
  if (P.hasBias != 0u) { s = s + BIAS[oi]; }
  O[i] = s;`);
}

/** Output row y reads input row iy through kernel row ki when y*sh - ph + ki = iy; ki descends so y ascends. */
function windowsOf(body: string): string {
  return `
  for (var ki = i32(P.kh) - 1; ki >= 0; ki--) {
    let ty = iy + i32(P.ph) - ki;
    if (ty < 0 || ty % i32(P.sh) != 0 || ty / i32(P.sh) >= i32(P.oh)) { continue; }
    let y = u32(ty / i32(P.sh));
    for (var kj = i32(P.kw) - 1; kj >= 0; kj--) {
      let tx = ix + i32(P.pw) - kj;
      if (tx < 0 || tx % i32(P.sw) != 0 || tx / i32(P.sw) >= i32(P.ow)) { continue; }
      let x = u32(tx / i32(P.sw));
${body}
    }
  }`;
}

export function conv2dBackwardDataShader(wg: number): string {
  return perItem(wg, [["DY", "r"], ["WT", "r"], ["DX", "rw"]], [...GEOMETRY, "acc"], [], `${IN_INDEX}
  var s = 0.0;
  for (var oi = 0u; oi < P.bo; oi++) {${windowsOf(`      s = s + DY[((ni * P.bo + oi) * P.oh + y) * P.ow + x] *
        WT[((oi * P.bc + ci) * P.kh + u32(ki)) * P.kw + u32(kj)];`)}
  }
${store("DX[i]", "s")}`);
}

/**
 * col2im for the data gradient: DC holds, per sample, the matmul dy^T [oh*ow, o] x W [o, c*kh*kw],
 * each entry summing its o products in order; each input element adds the entries of the windows
 * that see it, in the direct kernel's window order.
 */
export function col2imShader(wg: number): string {
  return perItem(wg, [["DC", "r"], ["DX", "rw"]], [...GEOMETRY, "acc"], [], `${IN_INDEX}
  let taps = P.bc * P.kh * P.kw;
  var s = 0.0;${windowsOf(`      s = s + DC[((ni * P.oh + y) * P.ow + x) * taps + (ci * P.kh + u32(ki)) * P.kw + u32(kj)];`)}
${store("DX[i]", "s")}`);
}

/** Output o of dw [o, c, kh, kw]: a sum over the n * oh * ow output positions k = (ni, y, x). */
export function conv2dBackwardWeightsShader(wg: number, lanes: number): string {
  return reduction(wg, lanes, [["X", "r"], ["DY", "r"], ["DW", "rw"]], [...GEOMETRY, "acc"], [], {
    setup: `
  let kj = o % P.kw;
  let ki = (o / P.kw) % P.kh;
  let ci = (o / (P.kw * P.kh)) % P.bc;
  let oi = o / (P.kw * P.kh * P.bc);`,
    len: "P.bn * P.oh * P.ow",
    each: `
    let x = k % P.ow;
    let y = (k / P.ow) % P.oh;
    let ni = k / (P.ow * P.oh);
    let iy = i32(y * P.sh + ki) - i32(P.ph);
    let ix = i32(x * P.sw + kj) - i32(P.pw);
    if (iy < 0 || iy >= i32(P.bh) || ix < 0 || ix >= i32(P.bw)) { continue; }`,
    terms: { s: "DY[((ni * P.bo + oi) * P.oh + y) * P.ow + x] * X[((ni * P.bc + ci) * P.bh + u32(iy)) * P.bw + u32(ix)]" },
    finish: store("DW[o]", "s") });
}

/** Output channel o: the bias gradient sums dy over k = (ni, position). */
export function conv2dBackwardBiasShader(wg: number, lanes: number): string {
  return reduction(wg, lanes, [["DY", "r"], ["DB", "rw"]], [...GEOMETRY, "acc"], [], {
    setup: "", len: "P.bn * P.oh * P.ow",
    terms: { s: "DY[((k / (P.oh * P.ow)) * P.bo + o) * P.oh * P.ow + k % (P.oh * P.ow)]" }, finish: store("DB[o]", "s") });
}

/** Max pooling: the first maximum of the window, its offset within the h*w plane. */
export function maxPoolShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"], ["AM", "rw", "i32"]], GEOMETRY, [], `
  let x = i % P.ow;
  let y = (i / P.ow) % P.oh;
  let xb = (i / (P.ow * P.oh)) * P.bh * P.bw;
  var best = 0.0;
  var at = -1;
  for (var ki = 0u; ki < P.kh; ki++) {
    let iy = i32(y * P.sh + ki) - i32(P.ph);
    if (iy < 0 || iy >= i32(P.bh)) { continue; }
    for (var kj = 0u; kj < P.kw; kj++) {
      let ix = i32(x * P.sw + kj) - i32(P.pw);
      if (ix < 0 || ix >= i32(P.bw)) { continue; }
      let v = X[xb + u32(iy) * P.bw + u32(ix)];
      if (at < 0 || v > best || (v != v && best == best)) { best = v; at = iy * i32(P.bw) + ix; }
    }
  }
  var negInf = 0xff800000u; // a var: a constant -inf is rejected by the WGSL compiler
  if (at < 0) { best = bitcast<f32>(negInf); }
  O[i] = best;
  AM[i] = at;`);
}

/** Item i of dx: the outputs whose recorded maximum is this input, added in output order. */
export function maxPoolBackwardShader(wg: number): string {
  return perItem(wg, [["DY", "r"], ["AM", "r", "i32"], ["DX", "rw"]], [...GEOMETRY, "acc"], [], `${IN_INDEX}
  let plane = ni * P.bc + ci;
  let me = iy * i32(P.bw) + ix;
  var s = 0.0;
  if (P.acc != 0u) { s = DX[i]; }
${windowsOf(`      let o = (plane * P.oh + y) * P.ow + x;
      if (AM[o] == me) { s = s + DY[o]; }`)}
  DX[i] = s;`);
}

export function avgPoolShader(wg: number): string {
  return perItem(wg, [["X", "r"], ["O", "rw"]], GEOMETRY, [], `
  let x = i % P.ow;
  let y = (i / P.ow) % P.oh;
  let xb = (i / (P.ow * P.oh)) * P.bh * P.bw;
  var s = 0.0;
  for (var ki = 0u; ki < P.kh; ki++) {
    let iy = i32(y * P.sh + ki) - i32(P.ph);
    if (iy < 0 || iy >= i32(P.bh)) { continue; }
    for (var kj = 0u; kj < P.kw; kj++) {
      let ix = i32(x * P.sw + kj) - i32(P.pw);
      if (ix < 0 || ix >= i32(P.bw)) { continue; }
      s = s + X[xb + u32(iy) * P.bw + u32(ix)];
    }
  }
  O[i] = s / f32(P.kh * P.kw);`);
}

export function avgPoolBackwardShader(wg: number): string {
  return perItem(wg, [["DY", "r"], ["DX", "rw"]], [...GEOMETRY, "acc"], [], `${IN_INDEX}
  let plane = ni * P.bc + ci;
  var s = 0.0;
${windowsOf(`      s = s + DY[(plane * P.oh + y) * P.ow + x] / f32(P.kh * P.kw);`)}
${store("DX[i]", "s")}`);
}
