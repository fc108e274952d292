#!/usr/bin/env node
// Microbenchmark of the native addon's heavy kernels (single thread): matmul shapes of the MLP
// benchmark model and the CNN's two convolutions in each direction, for both convolution layouts.
// Prints one JSON object per line: {kernel, shape, layout?, ms, gflops}. Usage:
//   node scripts/kernel-bench.mjs [--reps N]
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const addon = createRequire(import.meta.url)(join(root, "build", "Release", "pipewright.node"));
const repsArg = process.argv.indexOf("--reps");
const REPS = repsArg > 0 ? Number(process.argv[repsArg + 1]) : 15;

function rand(n) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Median wall time in ms of fn over REPS runs after 3 warm-up runs. */
function time(fn) {
  for (let i = 0; i < 3; i++) fn();
  const t = [];
  for (let i = 0; i < REPS; i++) {
    const s = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

function report(kernel, shape, flops, ms, extra = {}) {
  console.log(JSON.stringify({ kernel, shape, ...extra, ms: +ms.toFixed(4), gflops: +(flops / ms / 1e6).toFixed(2) }));
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
