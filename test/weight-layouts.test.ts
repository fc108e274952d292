// Held weights and their transposed copies (autograd/weight-layouts.ts): heldTranspose is null for
// unheld weights and, from a held weight's first use on, the transpose of the weight's current values
// (checked against a transpose written out here), so which kernel a thin product runs never depends
// on whether a copy was made ahead of time; prepareHeldCopy makes
// copies only for weights that had one in their previous hold; linear's input gradient through a
// held copy equals the unheld one (exactly on the reference backend, which sums in the same order
// either way; within the float32 dot-product bound on the native backend). Holds are module-global:
// every test releases what it holds in a finally block.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backward } from "../src/autograd/engine.js";
import { linear, mul, sum } from "../src/autograd/index.js";
import { heldHasCopy, heldTranspose, holdWeights, prepareHeldCopy, releaseWeights, THIN_ROWS } from "../src/autograd/weight-layouts.js";
import { loadNative, useBackend, type Backend } from "../src/backend/index.js";
import { referenceBackend } from "../src/backend/reference.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import { createModel } from "../src/nn/models/index.js";
import type { ModelSpec } from "../src/nn/models/spec.js";
import { splitBatch } from "../src/data/microbatch.js";

const rng = new Rng(777);
const randn = (shape: number[], grad = true): Tensor => Tensor.randn(shape, rng, 1, grad);

/** w [o, i] transposed to [i, o], written out. */
function transposed(w: Tensor): Float32Array {
  const [o, i] = w.shape;
  const t = new Float32Array(w.size);
  for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) t[c * o + r] = w.data[r * i + c];
  return t;
}

/** Runs fn on backend b, then puts the previous one back. */
function withBackend<T>(b: Backend, fn: () => T): T {
  const prev = useBackend(b);
  try { return fn(); } finally { useBackend(prev); }
}

const native = loadNative();

test("heldTranspose: null when unheld; the transpose from the first use of a hold; fresh after release, change, re-hold", () => {
  const w = randn([5, 3]);
  const bias = randn([5]);
  assert.equal(heldTranspose(w), null);
  assert.equal(heldTranspose(w), null, "still unheld: never a copy");
  holdWeights([w, bias]);
  try {
    assert.equal(heldTranspose(bias), null, "1-D tensors are not held");
    const t = heldTranspose(w);
    assert.ok(t, "first use: a copy (the same kernel on every use)");
    assert.deepEqual(t, transposed(w));
    assert.equal(heldTranspose(w), t, "second use: the same cached copy");
    holdWeights([w]);
    assert.equal(heldTranspose(w), t, "holding again while held keeps the copy");
  } finally {
    releaseWeights([w, bias]);
  }
  assert.equal(heldTranspose(w), null, "released: no copy");
  // The weight changes between holds (an optimizer step): the next hold sees the new values.
  for (let i = 0; i < w.size; i++) w.data[i] = w.data[i] * -2 + 1;
  holdWeights([w]);
  try {
    assert.deepEqual(heldTranspose(w), transposed(w), "first use of the new hold: transpose of the new values");
  } finally {
    releaseWeights([w]);
  }
});

test("prepareHeldCopy: only for weights that had a copy in their previous hold; false when there is none", () => {
  const used = randn([4, 6]);
  const never = randn([2, 2]);
  assert.equal(prepareHeldCopy(), false, "nothing held");
  holdWeights([used, never]);
  try {
    assert.equal(prepareHeldCopy(), false, "first hold: no weight had a copy before");
    heldTranspose(used); // copy made
  } finally {
    releaseWeights([used, never]);
  }
  assert.equal(prepareHeldCopy(), false, "released: nothing held");
  for (let i = 0; i < used.size; i++) used.data[i] += 0.5;
  holdWeights([used, never]);
  try {
    assert.equal(prepareHeldCopy(), true, "`used` had a copy: one is made ahead of use");
    assert.equal(prepareHeldCopy(), false, "and nothing else qualifies");
    const t = heldTranspose(used);
    assert.ok(t, "the prepared copy serves the first use");
    assert.deepEqual(t, transposed(used), "prepared from the current values");
  } finally {
    releaseWeights([used, never]);
  }
});

/**
 * dx, dw, db of loss = sum(linear(x, w, b) * c) over `calls` backward passes with `rows` rows each,
 * with w held (or not) throughout; also whether w's copy existed afterwards.
 */
function linearGrads(w0: Tensor, b0: Tensor, xs: Tensor[], cs: Tensor[], hold: boolean): { dx: Float32Array[]; dw: Float32Array; db: Float32Array; copied: boolean } {
  const w = new Tensor(w0.data.slice(), w0.shape, true);
  const b = new Tensor(b0.data.slice(), b0.shape, true);
  if (hold) holdWeights([w, b]);
  try {
    const dx = xs.map((x0, i) => {
      const x = new Tensor(x0.data.slice(), x0.shape, true);
      backward(sum(mul(linear(x, w, b), cs[i])));
      return x.grad!.data.slice();
    });
    // A thin backward made the copy; a wide one never asked for it.
    const copied = hold && heldHasCopy(w);
    return { dx, dw: w.grad!.data.slice(), db: b.grad!.data.slice(), copied };
  } finally {
    if (hold) releaseWeights([w, b]);
  }
}

function thinCase(rows: number, inF: number, outF: number, calls: number): { w: Tensor; b: Tensor; xs: Tensor[]; cs: Tensor[] } {
  return {
    w: randn([outF, inF]), b: randn([outF]),
    xs: Array.from({ length: calls }, () => randn([rows, inF], false)),
    cs: Array.from({ length: calls }, () => randn([rows, outF], false)),
  };
}

test("linear with a held weight (reference backend): the same gradients bit for bit, the copy used only for thin products", () => {
  withBackend(referenceBackend, () => {
    for (const [rows, inF, outF] of [[1, 7, 9], [5, 16, 40], [THIN_ROWS, 10, 12]]) {
      const c = thinCase(rows, inF, outF, 3);
      const plain = linearGrads(c.w, c.b, c.xs, c.cs, false);
      const held = linearGrads(c.w, c.b, c.xs, c.cs, true);
      assert.ok(held.copied, `rows=${rows}: linear's thin backward used the held weight`);
      held.dx.forEach((d, i) => assert.deepEqual(d, plain.dx[i], `rows=${rows} call ${i} dx`));
      assert.deepEqual(held.dw, plain.dw, `rows=${rows} dw`);
      assert.deepEqual(held.db, plain.db, `rows=${rows} db`);
      // Oracle for dx itself: c W, written out in float64 (the reference rounds once).
      const want = new Float32Array(rows * inF);
      for (let r = 0; r < rows; r++) for (let j = 0; j < inF; j++) {
        let s = 0;
        for (let o = 0; o < outF; o++) s += c.cs[2].data[r * outF + o] * c.w.data[o * inF + j];
        want[r * inF + j] = s;
      }
      assert.deepEqual(held.dx[2], want, `rows=${rows}: dx through the copy is c W`);
    }
    // Beyond THIN_ROWS the copy is never asked for.
    const wide = thinCase(THIN_ROWS + 1, 6, 8, 2);
    assert.equal(linearGrads(wide.w, wide.b, wide.xs, wide.cs, true).copied, false);
  });
});

test("linear with a held weight (native backend): gradients within the float32 dot-product bound of the unheld ones", { skip: native ? false : "native addon unavailable" }, () => {
  withBackend(native!, () => {
    for (const [rows, inF, outF] of [[1, 33, 70], [4, 64, 256], [THIN_ROWS, 50, 130]]) {
      const c = thinCase(rows, inF, outF, 3);
      const plain = linearGrads(c.w, c.b, c.xs, c.cs, false);
      const held = linearGrads(c.w, c.b, c.xs, c.cs, true);
      assert.ok(held.copied, `rows=${rows}: linear's thin backward used the held weight`);
      // dx = c W: both results are float32 sums of outF products, each within
      // gamma(outF + 1) |c| |W| of the exact value (Higham 3.5), so of each other within twice that.
      const U = 2 ** -24, gamma = ((outF + 1) * U) / (1 - (outF + 1) * U);
      held.dx.forEach((d, i) => {
        const absCW = new Float32Array(rows * inF);
        referenceBackend.matmul(c.cs[i].data.map(Math.abs), c.w.data.map(Math.abs), absCW, 1, rows, outF, inF, false, false, false);
        for (let e = 0; e < d.length; e++) {
          const lim = 2 * gamma * absCW[e] + 1e-30;
          assert.ok(Math.abs(d[e] - plain.dx[i][e]) <= lim, `rows=${rows} call ${i} dx[${e}]: ${d[e]} vs ${plain.dx[i][e]} (bound ${lim})`);
        }
      });
      // The weight gradients do not read the copy at all: identical.
      assert.deepEqual(held.dw, plain.dw, `rows=${rows} dw`);
      assert.deepEqual(held.db, plain.db, `rows=${rows} db`);
    }
  });
});

test("a failed inline step releases every worker's held weights (no stale copy survives it)", async () => {
  const spec: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16, 16], classes: 5 };
  const model = createModel(spec, 11);
  const ex = new InlineExecutor(model, { model: spec, seed: 11, schedule: generateSchedule("gpipe", { stages: 2, microbatches: 2 }),
    balance: uniformBalance(model.units.length, 2), recompute: "never", optimizer: { name: "sgd", lr: 0.1 } });
  const parts = splitBatch({ x: randn([8, 12], false), y: new Int32Array(8).fill(99) }, 2); // stage 1 throws at 1F0
  await assert.rejects(ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / 8 }), /1F0/);
  for (const [name, p] of model.namedParameters()) {
    if (p.rank === 2) assert.equal(heldTranspose(p), null, `${name} still held after the failed step`);
  }
  await ex.close();
});
