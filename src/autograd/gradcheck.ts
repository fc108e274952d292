// Finite-difference gradient checking for any op or composition of ops, on whichever backend is
// current (tests select the reference backend, the oracle).
//
// The function's output y is projected onto fixed random weights r, L = Σ r·y (summed in float64 in
// JS), so one backward pass with gradient r yields dL/dx for every input element, which is compared
// with the central difference (L(x + h) - L(x - h)) / 2h.
//
// Tolerance. The forward runs in float32, so each evaluation of L carries a rounding error of about
// u·S, u = 2^-24 ≈ 6e-8 and S = Σ|r·y| (times a small factor for the depth of the computation). The
// central difference divides two such errors by 2h, giving a noise floor of about u·S/h; we allow
// 16·u·S/h for the depth factor. Truncation error is h²/6·|f'''|, ≈ 2e-5 for h = 1e-2 and O(1) third
// derivatives, covered by atol = 1e-3 and a relative 1e-2 of the numeric value. The check passes when
// |analytic - numeric| <= atol + rtol·|numeric| + noise for every element. Inputs must keep kinks
// (relu at 0, max/maxPool ties) more than h away, which the tests arrange.
import { Tensor } from "../tensor/tensor.js";
import { Rng } from "../tensor/random.js";
import { fmt } from "../tensor/shape.js";
import { backward, noGrad } from "./engine.js";

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-2). */
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Seed of the random projection weights. */
  seed?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** Elements compared over all inputs that require grad. */
  checked: number;
  maxAbsError: number;
  /** Description of the worst element relative to its tolerance. */
  worst: string;
}

const U = 2 ** -24;

function project(y: Tensor, r: Float32Array): { value: number; magnitude: number } {
  let value = 0;
  let magnitude = 0;
  for (let i = 0; i < y.size; i++) {
    if (r[i] === 0) continue;
    value += r[i] * y.data[i];
    magnitude += Math.abs(r[i] * y.data[i]);
  }
  return { value, magnitude };
}

/** Compares f's analytic input gradients with central differences. Inputs are restored afterwards. */
export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[],
  options: GradcheckOptions = {}): GradcheckResult {
  const eps = options.eps ?? 1e-2;
  const atol = options.atol ?? 1e-3;
  const rtol = options.rtol ?? 1e-2;
  const rng = new Rng(options.seed ?? 1234);

  const y0 = noGrad(() => f(...inputs));
  const r = new Float32Array(y0.size);
  // Non-finite outputs (masked attention scores) carry no gradient; leave them out of L.
  for (let i = 0; i < r.length; i++) r[i] = Number.isFinite(y0.data[i]) ? rng.uniform() * 2 - 1 : 0;
  const { magnitude } = project(y0, r);
  const noise = (16 * U * Math.max(magnitude, 1)) / eps;

  const saved = inputs.map((x) => x.grad);
  inputs.forEach((x) => { x.grad = null; });
  const y = f(...inputs);
  if (!y.requiresGrad) throw new Error(`gradcheck: output ${fmt(y.shape)} does not depend on any input that requires grad`);
  backward(y, [r]);
  const analytic = inputs.map((x) => (x.grad ? x.grad.data.slice() : new Float32Array(x.size)));
  inputs.forEach((x, i) => { x.grad = saved[i]; });

  let checked = 0;
  let maxAbsError = 0;
  let worstRatio = -1;
  let worst = "";
  let ok = true;
  inputs.forEach((x, xi) => {
    if (!x.requiresGrad) return;
    for (let i = 0; i < x.size; i++) {
      const v = x.data[i];
      x.data[i] = v + eps;
      const hp = x.data[i] - v; // the step actually taken after float32 rounding
      const lp = project(noGrad(() => f(...inputs)), r).value;
      x.data[i] = v - eps;
      const hm = v - x.data[i];
      const lm = project(noGrad(() => f(...inputs)), r).value;
      x.data[i] = v;
      const numeric = (lp - lm) / (hp + hm);
      const a = analytic[xi][i];
      const err = Math.abs(a - numeric);
      const tol = atol + rtol * Math.abs(numeric) + noise;
      checked++;
      if (!(err <= tol)) ok = false;
      if (Number.isNaN(err)) maxAbsError = NaN;
      else if (err > maxAbsError) maxAbsError = err;
      const ratio = Number.isNaN(err) ? Infinity : err / tol;
      if (ratio > worstRatio) {
        worstRatio = ratio;
        worst = `input ${xi} ${fmt(x.shape)} element ${i}: analytic ${a}, numeric ${numeric}, |diff| ${err} (tolerance ${tol.toExponential(2)})`;
      }
    }
  });
  return { ok, checked, maxAbsError, worst };
}

/** gradcheck that throws with the worst element when the check fails. */
export function assertGradcheck(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[],
  options: GradcheckOptions = {}, label = "gradcheck"): GradcheckResult {
  const res = gradcheck(f, inputs, options);
  if (!res.ok) throw new Error(`${label} failed: ${res.worst}`);
  if (res.checked === 0) throw new Error(`${label}: no input requires grad, nothing was checked`);
  return res;
}

/**
 * Runs backward twice on fresh forwards and checks that leaf gradients double (PyTorch's
 * accumulation). Returns the largest relative deviation from exactly twice the first gradient.
 */
export function checkAccumulation(f: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[], seed = 99): number {
  const y0 = noGrad(() => f(...inputs));
  const rng = new Rng(seed);
  const r = new Float32Array(y0.size);
  for (let i = 0; i < r.length; i++) r[i] = Number.isFinite(y0.data[i]) ? rng.uniform() * 2 - 1 : 0;
  inputs.forEach((x) => { x.grad = null; });
  backward(f(...inputs), [r]);
  const once = inputs.map((x) => (x.grad ? x.grad.data.slice() : null));
  backward(f(...inputs), [r]);
  let worst = 0;
  inputs.forEach((x, i) => {
    const g1 = once[i];
    if (!g1) return;
    if (!x.grad) { worst = Infinity; return; }
    for (let j = 0; j < g1.length; j++) {
      const dev = Math.abs(x.grad.data[j] - 2 * g1[j]) / Math.max(Math.abs(2 * g1[j]), 1e-30);
      if (dev > worst || Number.isNaN(dev)) worst = Number.isNaN(dev) ? Infinity : dev;
    }
  });
  inputs.forEach((x) => { x.grad = null; });
  return worst;
}
