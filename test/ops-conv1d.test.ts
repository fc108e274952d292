// conv1d and Conv1d, and Conv2d with rectangular kernels: forward against a direct naive loop,
// gradients against finite differences, PyTorch's state-dict names and shapes, errors naming shapes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { conv1d, conv2d, sum } from "../src/autograd/index.js";
import { backward } from "../src/autograd/engine.js";
import { loadNative, nativeLoadError, setBackend } from "../src/backend/index.js";
import { Conv1d, Conv2d } from "../src/nn/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { assertClose, checkGrad, randn } from "./ops-helpers.js";

/** out[n, o, t] = b[o] + Σ_c Σ_k w[o, c, k] · x[n, c, t·stride + k - padding] (zero outside). */
function naiveConv1d(x: Tensor, w: Tensor, b: Tensor | null, stride: number, padding: number): { shape: number[]; data: number[] } {
  const [n, c, len] = x.shape;
  const [o, , k] = w.shape;
  const ol = Math.floor((len + 2 * padding - k) / stride) + 1;
  const data: number[] = [];
  for (let i = 0; i < n; i++) for (let oc = 0; oc < o; oc++) for (let t = 0; t < ol; t++) {
    let s = b ? b.data[oc] : 0;
    for (let ic = 0; ic < c; ic++) for (let j = 0; j < k; j++) {
      const pos = t * stride + j - padding;
      if (pos >= 0 && pos < len) s += w.data[(oc * c + ic) * k + j] * x.data[(i * c + ic) * len + pos];
    }
    data.push(s);
  }
  return { shape: [n, o, ol], data };
}

/** Direct 2-D cross-correlation for [n, c, h, w] * [o, c, kh, kw] with per-axis stride and padding. */
function naiveConv2d(x: Tensor, w: Tensor, b: Tensor | null, [sh, sw]: number[], [ph, pw]: number[]): { shape: number[]; data: number[] } {
  const [n, c, h, wd] = x.shape;
  const [o, , kh, kw] = w.shape;
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((wd + 2 * pw - kw) / sw) + 1;
  const data: number[] = [];
  for (let i = 0; i < n; i++) for (let oc = 0; oc < o; oc++) for (let y = 0; y < oh; y++) for (let xx = 0; xx < ow; xx++) {
    let s = b ? b.data[oc] : 0;
    for (let ic = 0; ic < c; ic++) for (let u = 0; u < kh; u++) for (let v = 0; v < kw; v++) {
      const r = y * sh + u - ph, q = xx * sw + v - pw;
      if (r >= 0 && r < h && q >= 0 && q < wd) s += w.data[((oc * c + ic) * kh + u) * kw + v] * x.data[((i * c + ic) * h + r) * wd + q];
    }
    data.push(s);
  }
  return { shape: [n, o, oh, ow], data };
}

const CASES: { x: number[]; w: number[]; stride: number; padding: number }[] = [
  { x: [2, 3, 9], w: [4, 3, 3], stride: 1, padding: 0 },
  { x: [1, 2, 10], w: [3, 2, 4], stride: 2, padding: 1 },
  { x: [3, 1, 7], w: [2, 1, 1], stride: 3, padding: 2 },
  { x: [2, 2, 5], w: [2, 2, 5], stride: 1, padding: 0 }, // kernel as long as the input
];

test("conv1d: forward against a direct loop (stride, padding, bias or none)", () => {
  for (const { x: xs, w: ws, stride, padding } of CASES) {
    const x = randn(xs, false), w = randn(ws, false), b = randn([ws[0]], false);
    for (const bias of [b, null]) {
      const want = naiveConv1d(x, w, bias, stride, padding);
      const y = conv1d(x, w, bias, { stride, padding });
      const label = `conv1d ${JSON.stringify(xs)} ${JSON.stringify(ws)} s${stride} p${padding}${bias ? "" : " no bias"}`;
      assert.deepEqual(y.shape, want.shape, label);
      assertClose(y.data, want.data, 1e-5, label);
    }
  }
});

test("conv1d: gradients of input, weight and bias against finite differences", () => {
  for (const { x: xs, w: ws, stride, padding } of CASES) {
    checkGrad(`conv1d ${JSON.stringify(xs)} ${JSON.stringify(ws)} s${stride} p${padding}`,
      (t, k, bb) => conv1d(t, k, bb, { stride, padding }), [randn(xs), randn(ws), randn([ws[0]])]);
  }
  checkGrad("conv1d no bias", (t, k) => conv1d(t, k, null, { padding: 1 }), [randn([2, 2, 6]), randn([3, 2, 3])]);
  const frozenX = randn([2, 2, 6], false), frozenW = randn([3, 2, 3], false);
  checkGrad("conv1d bias only", (bb) => conv1d(frozenX, frozenW, bb), [randn([3])]);
  checkGrad("conv1d weight only", (k) => conv1d(frozenX, k, null, { stride: 2 }), [randn([3, 2, 3])]);
});

test("conv2d: rectangular kernels with per-axis stride and padding, forward and gradients", () => {
  const cases: { x: number[]; w: number[]; stride: number[]; padding: number[] }[] = [
    { x: [2, 2, 5, 7], w: [3, 2, 1, 3], stride: [1, 1], padding: [0, 1] },
    { x: [1, 3, 6, 4], w: [2, 3, 3, 2], stride: [2, 1], padding: [1, 0] },
    { x: [1, 1, 4, 6], w: [2, 1, 4, 1], stride: [1, 2], padding: [0, 0] },
  ];
  for (const { x: xs, w: ws, stride, padding } of cases) {
    const x = randn(xs, false), w = randn(ws, false), b = randn([ws[0]], false);
    const want = naiveConv2d(x, w, b, stride, padding);
    const y = conv2d(x, w, b, { stride: stride as [number, number], padding: padding as [number, number] });
    const label = `conv2d ${JSON.stringify(xs)} ${JSON.stringify(ws)} s${stride} p${padding}`;
    assert.deepEqual(y.shape, want.shape, label);
    assertClose(y.data, want.data, 1e-5, label);
    checkGrad(label, (t, k, bb) => conv2d(t, k, bb, { stride: stride as [number, number], padding: padding as [number, number] }),
      [randn(xs), randn(ws), randn([ws[0]])]);
  }
});

test("Conv1d: PyTorch's state-dict names, shapes and init bounds; forward is conv1d; it trains", () => {
  const layer = new Conv1d(3, 4, 5, new Rng(7), { stride: 2, padding: 1 });
  assert.deepEqual([...layer.stateDict().entries()].map(([k, t]) => [k, t.shape]), [["weight", [4, 3, 5]], ["bias", [4]]]);
  const bound = 1 / Math.sqrt(3 * 5); // kaiming_uniform(a = sqrt(5)) and the bias: 1/sqrt(fan_in), fan_in = in * k
  for (const t of [layer.weight, layer.bias!]) for (const v of t.data) assert.ok(Math.abs(v) <= bound, `${v} within ${bound}`);
  const x = randn([2, 3, 11], false);
  const y = layer.forward(x);
  const want = naiveConv1d(x, layer.weight, layer.bias, 2, 1);
  assert.deepEqual(y.shape, [2, 4, 5]);
  assertClose(y.data, want.data, 1e-5, "Conv1d forward");
  backward(sum(y));
  assert.deepEqual(layer.weight.grad!.shape, [4, 3, 5]);
  assert.deepEqual(layer.bias!.grad!.shape, [4]);
  // Each output position adds its bias once: d(sum)/db = N * L_out.
  assert.deepEqual(Array.from(layer.bias!.grad!.data), [10, 10, 10, 10]);
  const noBias = new Conv1d(2, 2, 3, new Rng(1), { bias: false });
  assert.deepEqual([...noBias.stateDict().keys()], ["weight"]);
});

test("Conv2d takes [kh, kw] kernels and per-axis stride and padding; a square kernel is unchanged", () => {
  const rect = new Conv2d(2, 3, [1, 3], new Rng(3), { stride: [1, 2], padding: [0, 1] });
  assert.deepEqual(rect.weight.shape, [3, 2, 1, 3]);
  const x = randn([1, 2, 4, 6], false);
  const y = rect.forward(x);
  const want = naiveConv2d(x, rect.weight, rect.bias, [1, 2], [0, 1]);
  assert.deepEqual(y.shape, want.shape);
  assertClose(y.data, want.data, 1e-5, "Conv2d [1, 3]");
  // The same seed gives the same weights for k and [k, k].
  const a = new Conv2d(2, 3, 3, new Rng(9)), b = new Conv2d(2, 3, [3, 3], new Rng(9));
  assert.deepEqual(Array.from(a.weight.data), Array.from(b.weight.data));
  assert.deepEqual(Array.from(a.bias!.data), Array.from(b.bias!.data));
});

test("conv1d/Conv1d/Conv2d errors name the shapes and arguments", () => {
  assert.throws(() => conv1d(randn([1, 3, 5]), randn([2, 2, 3])), /conv1d: input \[1, 3, 5\] and weight \[2, 2, 3\]: input has 3 channels but weight expects 2/);
  assert.throws(() => conv1d(randn([1, 2, 2]), randn([2, 2, 3])), /conv1d: input \[1, 2, 2\] and weight \[2, 2, 3\]: kernel 3 is longer than the padded input 2/);
  assert.throws(() => conv1d(randn([1, 2, 5, 5]), randn([2, 2, 3])), /input must be \[N, C, L\]/);
  assert.throws(() => conv1d(randn([1, 2, 5]), randn([2, 2, 1, 3])), /weight must be \[O, C, K\]/);
  assert.throws(() => conv1d(randn([1, 2, 5]), randn([2, 2, 3]), randn([3])), /conv1d: weight \[2, 2, 3\] and bias \[3\]: bias must be \[2\]/);
  assert.throws(() => conv1d(randn([1, 2, 5]), randn([2, 2, 3]), null, { stride: 0 }), /conv1d: stride 0 must be an integer >= 1/);
  assert.throws(() => new Conv1d(2, 2, 0, new Rng(1)), /Conv1d kernelSize must be a positive integer, got 0/);
  assert.throws(() => new Conv2d(2, 2, [3, 0], new Rng(1)), /Conv2d kernelSize\[1\] must be a positive integer, got 0/);
  assert.throws(() => new Conv2d(2, 2, 3, new Rng(1), { padding: [1, -1] }), /Conv2d padding\[1\] must be a non-negative integer, got -1/);
  assert.throws(() => new Conv2d(2, 2, [1, 2, 3] as unknown as [number, number], new Rng(1)), /Conv2d kernelSize must be a number or a pair \[height, width\], got \[1,2,3\]/);
});

const nativeSkip = loadNative() ? false : `native addon unavailable: ${nativeLoadError}`;

test("conv1d and rectangular conv2d on the native backend (oneDNN, height-1 images) agree with the reference", { skip: nativeSkip }, () => {
  const run = (backend: "native" | "reference", f: (x: Tensor, w: Tensor, b: Tensor) => Tensor, xs: Tensor, ws: Tensor, bs: Tensor): Float32Array[] => {
    setBackend(backend);
    try {
      const [x, w, b] = [xs, ws, bs].map((t) => new Tensor(t.data.slice(), t.shape, true));
      const y = f(x, w, b);
      backward(y, [Float32Array.from({ length: y.size }, (_, i) => Math.sin(i))]);
      return [y.data, x.grad!.data, w.grad!.data, b.grad!.data];
    } finally {
      setBackend("reference");
    }
  };
  const cases: [string, (x: Tensor, w: Tensor, b: Tensor) => Tensor, number[], number[]][] = [
    ["conv1d s2 p1", (x, w, b) => conv1d(x, w, b, { stride: 2, padding: 1 }), [3, 4, 17], [5, 4, 3]],
    ["conv1d k1", (x, w, b) => conv1d(x, w, b), [2, 3, 8], [4, 3, 1]],
    ["conv2d [2, 5] s[1,2] p[1,2]", (x, w, b) => conv2d(x, w, b, { stride: [1, 2], padding: [1, 2] }), [2, 3, 6, 9], [4, 3, 2, 5]],
  ];
  for (const [label, f, xs, ws] of cases) {
    const x = randn(xs, false), w = randn(ws, false), b = randn([ws[0]], false);
    const want = run("reference", f, x, w, b);
    const got = run("native", f, x, w, b);
    ["output", "dx", "dw", "db"].forEach((what, i) => assertClose(got[i], want[i], 1e-4, `${label} ${what}`));
  }
});
