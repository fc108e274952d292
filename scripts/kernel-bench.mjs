#!/usr/bin/env node
// Microbenchmark of the native addon's heavy kernels (single thread): matmul shapes of the MLP
// benchmark model and the CNN's two convolutions in each direction, for both convolution layouts.
// Prints one JSON object per line: {kernel, shape, layout?, ms (median), best_ms, gflops (from the
// best run, since the shared machine's noise only ever adds time), cpu}. Needs `npm run build` (it
// loads the addon through the compiled loader, which picks the ISA build this CPU can run). Usage:
//   node scripts/kernel-bench.mjs [--reps N]
import { loadNativeAddon, loadedNativeBuild } from "../dist/src/backend/native.js";
import { thisCpu } from "../dist/src/backend/cpu-features.js";

const addon = loadNativeAddon();
const cpu = thisCpu(loadedNativeBuild());
const repsArg = process.argv.indexOf("--reps");
const REPS = repsArg > 0 ? Number(process.argv[repsArg + 1]) : 15;

function rand(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Median and best wall time in ms of fn over REPS runs after 3 warm-up runs. */
function time(fn) {
  for (let i = 0; i < 3; i++) fn();
  const t = [];
  for (let i = 0; i < REPS; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  return { median: t[Math.floor(t.length / 2)], best: t[0] };
}

function report(kernel, shape, flops, ms, extra = {}) {
  console.log(JSON.stringify({ kernel, shape, ...extra, ms: +ms.median.toFixed(4), best_ms: +ms.best.toFixed(4), cpu,
    gflops: +(flops / ms.best / 1e6).toFixed(2) }));
}

// [label, m, k, n, transA, transB, accumulate]: forward x @ W^T, backward dX = dY @ W, dW = dY^T @ X.
const matmuls = [
  ["fwd x@W^T", 128, 784, 1024, false, true, false],
  ["bwd dY@W", 128, 1024, 784, false, false, false],
  ["bwd dY^T@X", 1024, 128, 784, true, false, false],
  ["bwd dY^T@X acc", 1024, 128, 784, true, false, true],
  ["fwd x@W^T", 128, 1024, 1024, false, true, false],
  ["bwd dY@W", 128, 1024, 1024, false, false, false],
  ["bwd dY^T@X", 1024, 128, 1024, true, false, false],
  ["plain x@W", 128, 1024, 1024, false, false, false],
];
for (const [label, m, k, n, ta, tb, acc] of matmuls) {
  const a = rand(m * k), b = rand(k * n), out = new Float32Array(m * n);
  const ms = time(() => addon.matmul(a, b, out, 1, m, k, n, ta, tb, acc));
  report("matmul", `${label} ${m}x${k}x${n}`, 2 * m * k * n, ms);
}

// Attention products of the gpt model (batch 16 x 4 heads, context 128, head size 64).
for (const [label, m, k, n, ta, tb] of [["scores q@k^T", 128, 64, 128, false, true], ["context p@v", 128, 128, 64, false, false],
  ["bwd dP^T@Q", 128, 128, 64, true, false], ["bwd dS@K", 128, 128, 64, false, false]]) {
  const batch = 64, a = rand(batch * m * k), b = rand(batch * k * n), out = new Float32Array(batch * m * n);
  const ms = time(() => addon.matmul(a, b, out, batch, m, k, n, ta, tb, false));
  report("matmul", `${label} ${batch}x(${m}x${k}x${n})`, 2 * batch * m * k * n, ms);
}
// MLP layer with a bias-free shared weight over a batched input (folded into one GEMM).
{
  const a = rand(16 * 128 * 256), b = rand(256 * 1024), out = new Float32Array(16 * 128 * 1024);
  const ms = time(() => addon.matmul(a, b, out, 16, 128, 256, 1024, false, false, false, true));
  report("matmul", "shared-b 16x(128x256x1024)", 2 * 16 * 128 * 256 * 1024, ms);
}

const convs = [
  { n: 64, c: 1, h: 28, w: 28, o: 32, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, oh: 28, ow: 28 },
  { n: 64, c: 32, h: 14, w: 14, o: 64, kh: 3, kw: 3, sh: 1, sw: 1, ph: 1, pw: 1, oh: 14, ow: 14 },
];
for (const p of convs) {
  const x = rand(p.n * p.c * p.h * p.w), w = rand(p.o * p.c * p.kh * p.kw), b = rand(p.o);
  const y = new Float32Array(p.n * p.o * p.oh * p.ow), dy = rand(y.length);
  const dx = new Float32Array(x.length), dw = new Float32Array(w.length), db = new Float32Array(p.o);
  const flops = 2 * p.n * p.o * p.oh * p.ow * p.c * p.kh * p.kw;
  const shape = `${p.n}x${p.c}x${p.h}x${p.w} k${p.kh} -> ${p.o}`;
  for (const layout of ["plain", "blocked", "auto"]) {
    addon.setConvLayouts(layout, layout, layout);
    report("conv2d fwd", shape, flops, time(() => addon.conv2d(x, w, b, y, p)), { layout });
    report("conv2d bwd-data", shape, flops, time(() => addon.conv2dBackwardData(dy, w, dx, p, false)), { layout });
    report("conv2d bwd-data acc", shape, flops, time(() => addon.conv2dBackwardData(dy, w, dx, p, true)), { layout });
    report("conv2d bwd-weights", shape, flops, time(() => addon.conv2dBackwardWeights(x, dy, dw, db, p, false)), { layout });
  }
}

// Loop kernels at the sizes of the gpt benchmark model (batch 16, context 128, width 256, 4 heads).
{
  const T = 16 * 128, D = 256, H = 1024;
  const big = rand(T * H), big2 = rand(T * H), out = new Float32Array(T * H), row = rand(H);
  const gb = (bytes, ms) => +(bytes / ms / 1e6).toFixed(2);
  const loop = (kernel, shape, bytes, fn) => {
    const ms = time(fn);
    console.log(JSON.stringify({ kernel, shape, ms: +ms.median.toFixed(4), best_ms: +ms.best.toFixed(4), cpu,
      gbytes_per_s: gb(bytes, ms.best) }));
  };
  loop("unary gelu", `[${T},${H}]`, 8 * T * H, () => addon.unary("gelu", big, out));
  loop("unaryBackward gelu", `[${T},${H}]`, 12 * T * H, () => addon.unaryBackward("gelu", big, out, big2, out, false));
  loop("unary relu", `[${T},${H}]`, 8 * T * H, () => addon.unary("relu", big, out));
  loop("binary add row-broadcast", `[${T},${H}]+[${H}]`, 8 * T * H, () => addon.binary("add", big, [T, H], row, [1, H], out, [T, H]));
  loop("binary mul same-shape", `[${T},${H}]`, 12 * T * H, () => addon.binary("mul", big, [T, H], big2, [T, H], out, [T, H]));
  loop("sum over rows (bias grad)", `[${T},${H}]->[${H}]`, 4 * T * H, () => addon.sum(big, 1, T, H, row, false));
  const att = 16 * 4 * 128;
  const causal = big.slice(0, att * 128);
  for (let r = 0; r < att; r++) for (let j = (r % 128) + 1; j < 128; j++) causal[r * 128 + j] = -Infinity;
  const s1 = big.subarray(0, att * 128), s2 = big2.subarray(0, att * 128), so = out.subarray(0, att * 128);
  loop("softmax", `[${att},128]`, 8 * att * 128, () => addon.softmax(s1, att, 128, so, false));
  loop("softmax causal-masked", `[${att},128]`, 8 * att * 128, () => addon.softmax(causal, att, 128, so, false));
  loop("softmaxBackward", `[${att},128]`, 12 * att * 128, () => addon.softmaxBackward(s1, s2, att, 128, so, false, false));
  const x = big.subarray(0, T * D), g = rand(D), b = rand(D), y = new Float32Array(T * D);
  const mu = new Float32Array(T), rs = new Float32Array(T), dg = new Float32Array(D), db = new Float32Array(D);
  loop("layerNorm", `[${T},${D}]`, 8 * T * D, () => addon.layerNorm(x, g, b, T, D, 1e-5, y, mu, rs));
  loop("layerNormBackward", `[${T},${D}]`, 12 * T * D, () => addon.layerNormBackward(x, g, big2.subarray(0, T * D), mu, rs, T, D, y, dg, db, false));
  loop("permute heads", `[16,128,4,64]->[16,4,128,64]`, 8 * T * D, () => addon.permute(x, [16, 128, 4, 64], [0, 2, 1, 3], y, false));
  loop("permute transpose", `[64,128,64]->[64,64,128]`, 8 * T * D * 2, () => addon.permute(big.subarray(0, 64 * 128 * 64), [64, 128, 64], [0, 2, 1], out.subarray(0, 64 * 128 * 64), false));
  const pp = { n: 64, c: 32, h: 28, w: 28, kh: 2, kw: 2, sh: 2, sw: 2, ph: 0, pw: 0, oh: 14, ow: 14 };
  const px = rand(64 * 32 * 28 * 28), po = new Float32Array(64 * 32 * 196), pa = new Int32Array(64 * 32 * 196);
  loop("maxPool2d 2x2", "[64,32,28,28]", 4 * px.length * 1.5, () => addon.maxPool2d(px, pp, po, pa));
  loop("maxPool2dBackward 2x2", "[64,32,28,28]", 4 * px.length * 1.5, () => addon.maxPool2dBackward(po, pa, pp, px, false));
  const ce = rand(T * 256), lp = new Float32Array(T * 256), tg = new Int32Array(T).map((_, i) => i % 256);
  loop("crossEntropy", `[${T},256]`, 8 * T * 256, () => addon.crossEntropy(ce, tg, T, 256, lp));
  const w = rand(1 << 20), gr = rand(1 << 20), m = new Float32Array(1 << 20), v = new Float32Array(1 << 20);
  loop("adamwStep", "1M params", 28 << 20, () => addon.adamwStep(w, gr, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3));
  loop("sgdStep momentum", "1M params", 20 << 20, () => addon.sgdStep(w, gr, m, 0.01, 0.9, 0, 0, false, false));
}
