// The reference backend: plain TypeScript loops written for clarity, not speed. It is the oracle the
// native backend is tested against, so long sums accumulate in JS numbers (float64) and every kernel
// follows the definition in backend.ts literally.
import type { Backend, BinaryOp, UnaryOp } from "./backend.js";
import { broadcastStrides } from "./strides.js";

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_PI = 1 / Math.sqrt(Math.PI);

/** erf(z) for 0 <= z < 3 by the all-positive series erf(z) = 2/√π e^{-z²} Σ 2^n z^{2n+1}/(2n+1)!! (no cancellation). */
function erfSeries(z: number): number {
  const z2 = z * z;
  let term = z;
  let sum = z;
  for (let n = 1; n < 200; n++) {
    term *= (2 * z2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-z2) * sum;
}

/** erfc(z) for z >= 3 by its continued fraction (modified Lentz), accurate to double precision. */
function erfcContinuedFraction(z: number): number {
  // erfc(z) = e^{-z²}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))).
  const tiny = 1e-300;
  let f = z;
  let c = z;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const an = n / 2;
    d = z + an * d;
    if (d === 0) d = tiny;
    c = z + an / c;
    if (c === 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (INV_SQRT_PI * Math.exp(-z * z)) / f;
}

/** Complementary error function in double precision (JS has no Math.erf). */
export function erfc(z: number): number {
  if (Number.isNaN(z)) return NaN;
  if (z < 0) return 2 - erfc(-z);
  if (z < 3) return 1 - erfSeries(z);
  if (z >= 27) return 0; // below the smallest double (and keeps the fraction away from inf/inf)
  return erfcContinuedFraction(z);
}

export function erf(z: number): number {
  if (Number.isNaN(z)) return NaN;
  const a = Math.abs(z);
  const r = a < 3 ? erfSeries(a) : 1 - erfc(a);
  return z < 0 ? -r : r;
}

/** GELU with the exact erf, as torch.nn.functional.gelu(approximate="none"): x Φ(x) = x/2 erfc(-x/√2). */
function gelu(x: number): number { return 0.5 * x * erfc(-x * SQRT1_2); }

function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case "relu": return (x) => (x > 0 ? x : Number.isNaN(x) ? x : 0);
    case "gelu": return gelu;
    case "tanh": return Math.tanh;
    case "exp": return Math.exp;
    case "log": return Math.log;
    case "neg": return (x) => -x;
    case "sigmoid": return sigmoid;
    case "sqrt": return Math.sqrt;
    default: throw new Error(`reference backend: unknown unary op '${String(op)}'`);
  }
}

/** d op(x)/dx given x and y = op(x). */
function unaryDerivative(op: UnaryOp): (x: number, y: number) => number {
  switch (op) {
    case "relu": return (x) => (x > 0 ? 1 : 0); // like torch: the derivative at 0 is 0
    case "gelu": return (x) => 0.5 * erfc(-x * SQRT1_2) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case "tanh": return (_x, y) => 1 - y * y;
    case "exp": return (_x, y) => y;
    case "log": return (x) => 1 / x;
    case "neg": return () => -1;
    case "sigmoid": return (_x, y) => y * (1 - y);
    case "sqrt": return (_x, y) => 0.5 / y;
    default: throw new Error(`reference backend: unknown unary op '${String(op)}'`);
  }
}

function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case "add": return (a, b) => a + b;
    case "sub": return (a, b) => a - b;
    case "mul": return (a, b) => a * b;
    case "div": return (a, b) => a / b;
    default: throw new Error(`reference backend: unknown binary op '${String(op)}'`);
  }
}


/** Writes (or adds) a float64 scratch buffer into a float32 destination. */
function store(src: Float64Array, dst: Float32Array, accumulate: boolean): void {
  if (accumulate) for (let i = 0; i < dst.length; i++) dst[i] += src[i];
  else for (let i = 0; i < dst.length; i++) dst[i] = src[i];
}

/** Normalisation backward over one set of `count` elements sharing mean/rstd (layer/group/batch norm). */
function normBackwardGroup(x: Float32Array, dy: Float32Array, idx: (j: number) => number, gammaAt: (j: number) => number,
  count: number, mean: number, rstd: number, dx: Float32Array, accumulate: boolean): void {
  // dx = rstd (g - mean(g) - x̂ mean(g x̂)) with g = dy·gamma, x̂ = (x - mean) rstd.
  let sg = 0;
  let sgx = 0;
  for (let j = 0; j < count; j++) {
    const i = idx(j);
    const g = dy[i] * gammaAt(j);
    sg += g;
    sgx += g * (x[i] - mean) * rstd;
  }
  const mg = sg / count;
  const mgx = sgx / count;
  for (let j = 0; j < count; j++) {
    const i = idx(j);
    const xh = (x[i] - mean) * rstd;
    const v = rstd * (dy[i] * gammaAt(j) - mg - xh * mgx);
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

export const referenceBackend: Backend = {
  name: "reference",

  matmul(a, b, out, batch, m, k, n, transA, transB, accumulate, bBroadcast = false, bias = null) {
    // Element (i, p) of op(a) is a[aOff + i*ai + p*ap]; element (p, j) of op(b) is b[bOff + p*bp + j*bj].
    const ai = transA ? 1 : k;
    const ap = transA ? m : 1;
    const bp = transB ? 1 : n;
    const bj = transB ? k : 1;
    const acc = new Float64Array(n);
    for (let bi = 0; bi < batch; bi++) {
      const aOff = bi * m * k;
      const bOff = bBroadcast ? 0 : bi * k * n;
      const oOff = bi * m * n;
      if (!transA && transB) {
        // Both rows are contiguous along k: plain dot products (the i-p-j order would stride through b).
        for (let i = 0; i < m; i++) {
          const ar = aOff + i * k;
          for (let j = 0; j < n; j++) {
            const br = bOff + j * k;
            let s = 0;
            for (let p = 0; p < k; p++) s += a[ar + p] * b[br + p];
            if (bias) s += bias[j];
            const o = oOff + i * n + j;
            out[o] = accumulate ? out[o] + s : s;
          }
        }
        continue;
      }
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const av = a[aOff + i * ai + p * ap];
          const row = bOff + p * bp;
          for (let j = 0; j < n; j++) acc[j] += av * b[row + j * bj];
        }
        const o = oOff + i * n;
        if (bias) for (let j = 0; j < n; j++) acc[j] += bias[j];
        if (accumulate) for (let j = 0; j < n; j++) out[o + j] += acc[j];
        else for (let j = 0; j < n; j++) out[o + j] = acc[j];
      }
    }
  },

  conv2d(x, w, bias, out, p) {
    const { n, c, h, w: W, o, kh, kw, sh, sw, ph, pw, oh, ow } = p;
    for (let ni = 0; ni < n; ni++) {
      for (let oi = 0; oi < o; oi++) {
        for (let y = 0; y < oh; y++) {
          for (let xo = 0; xo < ow; xo++) {
            let s = bias ? bias[oi] : 0;
            for (let ci = 0; ci < c; ci++) {
              for (let ki = 0; ki < kh; ki++) {
                const iy = y * sh - ph + ki;
                if (iy < 0 || iy >= h) continue;
                for (let kj = 0; kj < kw; kj++) {
                  const ix = xo * sw - pw + kj;
                  if (ix < 0 || ix >= W) continue;
                  s += x[((ni * c + ci) * h + iy) * W + ix] * w[((oi * c + ci) * kh + ki) * kw + kj];
                }
              }
            }
            out[((ni * o + oi) * oh + y) * ow + xo] = s;
          }
        }
      }
    }
  },

  conv2dBackwardData(dy, w, dx, p, accumulate) {
    const { n, c, h, w: W, o, kh, kw, sh, sw, ph, pw, oh, ow } = p;
    const acc = new Float64Array(dx.length);
    for (let ni = 0; ni < n; ni++) {
      for (let oi = 0; oi < o; oi++) {
        for (let y = 0; y < oh; y++) {
          for (let xo = 0; xo < ow; xo++) {
            const g = dy[((ni * o + oi) * oh + y) * ow + xo];
            if (g === 0) continue;
            for (let ci = 0; ci < c; ci++) {
              for (let ki = 0; ki < kh; ki++) {
                const iy = y * sh - ph + ki;
                if (iy < 0 || iy >= h) continue;
                for (let kj = 0; kj < kw; kj++) {
                  const ix = xo * sw - pw + kj;
                  if (ix < 0 || ix >= W) continue;
                  acc[((ni * c + ci) * h + iy) * W + ix] += g * w[((oi * c + ci) * kh + ki) * kw + kj];
                }
              }
            }
          }
        }
      }
    }
    store(acc, dx, accumulate);
  },

  conv2dBackwardWeights(x, dy, dw, db, p, accumulate) {
    const { n, c, h, w: W, o, kh, kw, sh, sw, ph, pw, oh, ow } = p;
    for (let oi = 0; oi < o; oi++) {
      for (let ci = 0; ci < c; ci++) {
        for (let ki = 0; ki < kh; ki++) {
          for (let kj = 0; kj < kw; kj++) {
            let s = 0;
            for (let ni = 0; ni < n; ni++) {
              for (let y = 0; y < oh; y++) {
                const iy = y * sh - ph + ki;
                if (iy < 0 || iy >= h) continue;
                for (let xo = 0; xo < ow; xo++) {
                  const ix = xo * sw - pw + kj;
                  if (ix < 0 || ix >= W) continue;
                  s += dy[((ni * o + oi) * oh + y) * ow + xo] * x[((ni * c + ci) * h + iy) * W + ix];
                }
              }
            }
            const wi = ((oi * c + ci) * kh + ki) * kw + kj;
            dw[wi] = accumulate ? dw[wi] + s : s;
          }
        }
      }
      if (db) {
        let s = 0;
        for (let ni = 0; ni < n; ni++) {
          const base = (ni * o + oi) * oh * ow;
          for (let i = 0; i < oh * ow; i++) s += dy[base + i];
        }
        db[oi] = accumulate ? db[oi] + s : s;
      }
    }
  },

  binary(op, a, aShape, b, bShape, out, outShape) {
    const f = binaryFn(op);
    const rank = outShape.length;
    if (aShape.length !== rank || bShape.length !== rank) {
      throw new Error(`reference binary: ranks of ${aShape.length}, ${bShape.length} and ${rank} differ (pad with leading 1s)`);
    }
    if (a.length === out.length && b.length === out.length) {
      for (let i = 0; i < out.length; i++) out[i] = f(a[i], b[i]);
      return;
    }
    const sa = broadcastStrides(aShape, outShape);
    const sb = broadcastStrides(bShape, outShape);
    const idx = new Array<number>(rank).fill(0);
    let ia = 0;
    let ib = 0;
    for (let i = 0; i < out.length; i++) {
      out[i] = f(a[ia], b[ib]);
      // Odometer increment over the output index, keeping the input offsets in step.
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++;
        ia += sa[d];
        ib += sb[d];
        if (idx[d] < outShape[d]) break;
        ia -= sa[d] * idx[d];
        ib -= sb[d] * idx[d];
        idx[d] = 0;
      }
    }
  },

  unary(op, x, out) {
    const f = unaryFn(op);
    for (let i = 0; i < x.length; i++) out[i] = f(x[i]);
  },

  unaryBackward(op, x, y, dy, dx, accumulate) {
    const d = unaryDerivative(op);
    for (let i = 0; i < x.length; i++) {
      const v = dy[i] * d(x[i], y[i]);
      dx[i] = accumulate ? dx[i] + v : v;
    }
  },

  axpby(alpha, x, beta, out) {
    if (beta === 0) for (let i = 0; i < out.length; i++) out[i] = alpha * x[i];
    else for (let i = 0; i < out.length; i++) out[i] = alpha * x[i] + beta * out[i];
  },

  affine(x, alpha, beta, out) {
    for (let i = 0; i < out.length; i++) out[i] = x[i] * alpha + beta;
  },

  sum(x, outer, mid, inner, out, accumulate) {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        let s = 0;
        for (let m = 0; m < mid; m++) s += x[(o * mid + m) * inner + j];
        const oi = o * inner + j;
        out[oi] = accumulate ? out[oi] + s : s;
      }
    }
  },

  max(x, outer, mid, inner, out, argmax) {
    for (let o = 0; o < outer; o++) {
      for (let j = 0; j < inner; j++) {
        let best = -Infinity;
        let at = -1;
        for (let m = 0; m < mid; m++) {
          const v = x[(o * mid + m) * inner + j];
          // First maximum wins ties; a NaN propagates (like torch.max).
          if (at < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) { best = v; at = m; }
        }
        out[o * inner + j] = best;
        argmax[o * inner + j] = at;
      }
    }
  },

  softmax(x, rows, cols, out, log) {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let mx = -Infinity;
      for (let j = 0; j < cols; j++) if (x[base + j] > mx) mx = x[base + j];
      if (mx === -Infinity) mx = 0; // an all -inf row (fully masked) gives NaN like torch, not from inf - inf
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(x[base + j] - mx);
      if (log) {
        const lse = mx + Math.log(s);
        for (let j = 0; j < cols; j++) out[base + j] = x[base + j] - lse;
      } else {
        for (let j = 0; j < cols; j++) out[base + j] = Math.exp(x[base + j] - mx) / s;
      }
    }
  },

  softmaxBackward(y, dy, rows, cols, dx, log, accumulate) {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let s = 0;
      if (log) {
        // dx = dy - softmax · Σ dy
        for (let j = 0; j < cols; j++) s += dy[base + j];
        for (let j = 0; j < cols; j++) {
          const v = dy[base + j] - Math.exp(y[base + j]) * s;
          dx[base + j] = accumulate ? dx[base + j] + v : v;
        }
      } else {
        // dx = y (dy - Σ dy·y)
        for (let j = 0; j < cols; j++) s += dy[base + j] * y[base + j];
        for (let j = 0; j < cols; j++) {
          const v = y[base + j] * (dy[base + j] - s);
          dx[base + j] = accumulate ? dx[base + j] + v : v;
        }
      }
    }
  },

  crossEntropy(logits, targets, rows, cols, logProbs) {
    referenceBackend.softmax(logits, rows, cols, logProbs, true);
    let loss = 0;
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t < 0 || t >= cols) throw new Error(`crossEntropy: target ${t} in row ${r} is outside 0..${cols - 1}`);
      loss -= logProbs[r * cols + t];
    }
    return loss;
  },

  crossEntropyBackward(logProbs, targets, rows, cols, scale, dx, accumulate) {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let j = 0; j < cols; j++) {
        const v = scale * (Math.exp(logProbs[base + j]) - (j === targets[r] ? 1 : 0));
        dx[base + j] = accumulate ? dx[base + j] + v : v;
      }
    }
  },

  layerNorm(x, gamma, beta, rows, cols, eps, out, mean, rstd) {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      let s = 0;
      for (let j = 0; j < cols; j++) s += x[base + j];
      const mu = s / cols;
      let v = 0;
      for (let j = 0; j < cols; j++) { const d = x[base + j] - mu; v += d * d; }
      const rs = 1 / Math.sqrt(v / cols + eps);
      mean[r] = mu;
      rstd[r] = rs;
      for (let j = 0; j < cols; j++) out[base + j] = (x[base + j] - mu) * rs * gamma[j] + beta[j];
    }
  },

  layerNormBackward(x, gamma, dy, mean, rstd, rows, cols, dx, dgamma, dbeta, accumulate) {
    const dg = new Float64Array(cols);
    const dbt = new Float64Array(cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      const mu = mean[r];
      const rs = rstd[r];
      for (let j = 0; j < cols; j++) {
        dg[j] += dy[base + j] * (x[base + j] - mu) * rs;
        dbt[j] += dy[base + j];
      }
      normBackwardGroup(x, dy, (j) => base + j, (j) => gamma[j], cols, mu, rs, dx, accumulate);
    }
    for (let j = 0; j < cols; j++) { dgamma[j] += dg[j]; dbeta[j] += dbt[j]; }
  },

  groupNorm(x, gamma, beta, n, c, hw, groups, eps, out, mean, rstd) {
    const cg = c / groups;
    const count = cg * hw;
    for (let ni = 0; ni < n; ni++) {
      for (let g = 0; g < groups; g++) {
        const base = (ni * c + g * cg) * hw; // a group's channels are contiguous
        let s = 0;
        for (let i = 0; i < count; i++) s += x[base + i];
        const mu = s / count;
        let v = 0;
        for (let i = 0; i < count; i++) { const d = x[base + i] - mu; v += d * d; }
        const rs = 1 / Math.sqrt(v / count + eps);
        mean[ni * groups + g] = mu;
        rstd[ni * groups + g] = rs;
        for (let i = 0; i < count; i++) {
          const ch = g * cg + Math.floor(i / hw);
          out[base + i] = (x[base + i] - mu) * rs * gamma[ch] + beta[ch];
        }
      }
    }
  },

  groupNormBackward(x, gamma, dy, mean, rstd, n, c, hw, groups, dx, dgamma, dbeta, accumulate) {
    const cg = c / groups;
    const count = cg * hw;
    const dg = new Float64Array(c);
    const dbt = new Float64Array(c);
    for (let ni = 0; ni < n; ni++) {
      for (let g = 0; g < groups; g++) {
        const base = (ni * c + g * cg) * hw;
        const mu = mean[ni * groups + g];
        const rs = rstd[ni * groups + g];
        for (let i = 0; i < count; i++) {
          const ch = g * cg + Math.floor(i / hw);
          dg[ch] += dy[base + i] * (x[base + i] - mu) * rs;
          dbt[ch] += dy[base + i];
        }
        normBackwardGroup(x, dy, (i) => base + i, (i) => gamma[g * cg + Math.floor(i / hw)], count, mu, rs, dx,
          accumulate);
      }
    }
    for (let j = 0; j < c; j++) { dgamma[j] += dg[j]; dbeta[j] += dbt[j]; }
  },

  batchNormTrain(x, gamma, beta, n, c, hw, eps, out, mean, variance, rstd) {
    const count = n * hw;
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      for (let ni = 0; ni < n; ni++) {
        const base = (ni * c + ch) * hw;
        for (let i = 0; i < hw; i++) s += x[base + i];
      }
      const mu = s / count;
      let v = 0;
      for (let ni = 0; ni < n; ni++) {
        const base = (ni * c + ch) * hw;
        for (let i = 0; i < hw; i++) { const d = x[base + i] - mu; v += d * d; }
      }
      const biased = v / count;
      const rs = 1 / Math.sqrt(biased + eps);
      mean[ch] = mu;
      variance[ch] = biased;
      rstd[ch] = rs;
      for (let ni = 0; ni < n; ni++) {
        const base = (ni * c + ch) * hw;
        for (let i = 0; i < hw; i++) out[base + i] = (x[base + i] - mu) * rs * gamma[ch] + beta[ch];
      }
    }
  },

  batchNormInference(x, gamma, beta, mean, variance, n, c, hw, eps, out) {
    for (let ch = 0; ch < c; ch++) {
      const rs = 1 / Math.sqrt(variance[ch] + eps);
      for (let ni = 0; ni < n; ni++) {
        const base = (ni * c + ch) * hw;
        for (let i = 0; i < hw; i++) out[base + i] = (x[base + i] - mean[ch]) * rs * gamma[ch] + beta[ch];
      }
    }
  },

  batchNormBackward(x, gamma, dy, mean, rstd, n, c, hw, dx, dgamma, dbeta, accumulate) {
    const count = n * hw;
    for (let ch = 0; ch < c; ch++) {
      const mu = mean[ch];
      const rs = rstd[ch];
      const at = (j: number): number => (Math.floor(j / hw) * c + ch) * hw + (j % hw);
      let dg = 0;
      let dbt = 0;
      for (let j = 0; j < count; j++) {
        const i = at(j);
        dg += dy[i] * (x[i] - mu) * rs;
        dbt += dy[i];
      }
      dgamma[ch] += dg;
      dbeta[ch] += dbt;
      const gm = gamma[ch];
      normBackwardGroup(x, dy, at, () => gm, count, mu, rs, dx, accumulate);
    }
  },

  maxPool2d(x, p, out, argmax) {
    const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = p;
    for (let plane = 0; plane < n * c; plane++) {
      const xb = plane * h * w;
      const ob = plane * oh * ow;
      for (let y = 0; y < oh; y++) {
        for (let xo = 0; xo < ow; xo++) {
          let best = -Infinity;
          let at = -1;
          for (let ki = 0; ki < kh; ki++) {
            const iy = y * sh - ph + ki;
            if (iy < 0 || iy >= h) continue;
            for (let kj = 0; kj < kw; kj++) {
              const ix = xo * sw - pw + kj;
              if (ix < 0 || ix >= w) continue;
              const v = x[xb + iy * w + ix];
              // Padding is -inf; the first maximum in row-major window order wins ties; NaN propagates.
              if (at < 0 || v > best || (Number.isNaN(v) && !Number.isNaN(best))) { best = v; at = iy * w + ix; }
            }
          }
          out[ob + y * ow + xo] = best;
          argmax[ob + y * ow + xo] = at;
        }
      }
    }
  },

  maxPool2dBackward(dy, argmax, p, dx, accumulate) {
    const { n, c, h, w, oh, ow } = p;
    if (!accumulate) dx.fill(0);
    for (let plane = 0; plane < n * c; plane++) {
      const xb = plane * h * w;
      const ob = plane * oh * ow;
      for (let i = 0; i < oh * ow; i++) {
        const at = argmax[ob + i];
        if (at >= 0) dx[xb + at] += dy[ob + i];
      }
    }
  },

  avgPool2d(x, p, out) {
    const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = p;
    const div = kh * kw; // count_include_pad=true: padded zeros count in the divisor
    for (let plane = 0; plane < n * c; plane++) {
      const xb = plane * h * w;
      const ob = plane * oh * ow;
      for (let y = 0; y < oh; y++) {
        for (let xo = 0; xo < ow; xo++) {
          let s = 0;
          for (let ki = 0; ki < kh; ki++) {
            const iy = y * sh - ph + ki;
            if (iy < 0 || iy >= h) continue;
            for (let kj = 0; kj < kw; kj++) {
              const ix = xo * sw - pw + kj;
              if (ix < 0 || ix >= w) continue;
              s += x[xb + iy * w + ix];
            }
          }
          out[ob + y * ow + xo] = s / div;
        }
      }
    }
  },

  avgPool2dBackward(dy, p, dx, accumulate) {
    const { n, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow } = p;
    const div = kh * kw;
    const acc = new Float64Array(dx.length);
    for (let plane = 0; plane < n * c; plane++) {
      const xb = plane * h * w;
      const ob = plane * oh * ow;
      for (let y = 0; y < oh; y++) {
        for (let xo = 0; xo < ow; xo++) {
          const g = dy[ob + y * ow + xo] / div;
          for (let ki = 0; ki < kh; ki++) {
            const iy = y * sh - ph + ki;
            if (iy < 0 || iy >= h) continue;
            for (let kj = 0; kj < kw; kj++) {
              const ix = xo * sw - pw + kj;
              if (ix < 0 || ix >= w) continue;
              acc[xb + iy * w + ix] += g;
            }
          }
        }
      }
    }
    store(acc, dx, accumulate);
  },

  gather(table, ids, dim, out) {
    const rows = table.length / dim;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < 0 || id >= rows) throw new Error(`gather: id ${id} at position ${i} is outside 0..${rows - 1}`);
      for (let j = 0; j < dim; j++) out[i * dim + j] = table[id * dim + j];
    }
  },

  scatterAdd(dy, ids, dim, dtable) {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      for (let j = 0; j < dim; j++) dtable[id * dim + j] += dy[i * dim + j];
    }
  },

  permute(x, shape, perm, out, accumulate) {
    const rank = shape.length;
    const xStrides = new Array<number>(rank);
    let s = 1;
    for (let i = rank - 1; i >= 0; i--) { xStrides[i] = s; s *= shape[i]; }
    const outShape = perm.map((p) => shape[p]);
    const st = perm.map((p) => xStrides[p]); // stride in x of each output axis
    const idx = new Array<number>(rank).fill(0);
    let off = 0;
    for (let i = 0; i < out.length; i++) {
      out[i] = accumulate ? out[i] + x[off] : x[off];
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]++;
        off += st[d];
        if (idx[d] < outShape[d]) break;
        off -= st[d] * idx[d];
        idx[d] = 0;
      }
    }
  },

  causalMask(x, batch, t, value, out) {
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < t; i++) {
        const base = (b * t + i) * t;
        for (let j = 0; j < t; j++) out[base + j] = j > i ? value : x[base + j];
      }
    }
  },

  sgdStep(w, g, v, lr, momentum, dampening, weightDecay, nesterov, firstStep) {
    for (let i = 0; i < w.length; i++) {
      const gi = g[i] + weightDecay * w[i];
      let step = gi;
      if (momentum !== 0) {
        if (!v) throw new Error("sgdStep: momentum needs a velocity buffer");
        const vi = firstStep ? gi : momentum * v[i] + (1 - dampening) * gi;
        v[i] = vi;
        step = nesterov ? gi + momentum * vi : vi;
      }
      w[i] -= lr * step;
    }
  },

  adamwStep(w, g, m, v, lr, beta1, beta2, eps, weightDecay, step) {
    // torch.optim.AdamW (_single_tensor_adamw): decay, moments, then w -= lr/bc1 · m / (√v/√bc2 + eps).
    const bc1 = 1 - Math.pow(beta1, step);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
    const stepSize = lr / bc1;
    const decay = 1 - lr * weightDecay;
    for (let i = 0; i < w.length; i++) {
      const gi = g[i];
      const mi = beta1 * m[i] + (1 - beta1) * gi;
      const vi = beta2 * v[i] + (1 - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const wi = w[i] * decay;
      w[i] = wi - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
    }
  },
};
