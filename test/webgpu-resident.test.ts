// Device-resident tensors and batched submission on the webgpu backend (Mesa's llvmpipe where there
// is no GPU). The oracle is the first slice's path, still selectable (resident: false): every kernel
// uploads its operands and reads its outputs back. Training an MLP must give the same bits on every
// path, while the resident path moves O(1) tensors per step (the inputs, the labels, the loss), the
// same count for a deeper model, reads back one number (the loss, not the logits) and waits for the
// GPU O(1) times per step.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { useBackend } from "../src/backend/index.js";
import { backward } from "../src/autograd/engine.js";
import { createWebGpuBackend, type WebGpuBackend } from "../src/backend/webgpu/backend.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { SGD } from "../src/optim/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import type { GpuOptions } from "../src/backend/webgpu/gpu.js";

const opened: WebGpuBackend[] = [];
let skip: string | false = false;
function open(opts: GpuOptions): WebGpuBackend {
  const b = createWebGpuBackend({}, opts);
  opened.push(b);
  return b;
}
try {
  open({});
} catch (e) {
  skip = `no WebGPU adapter, skipping webgpu residency tests: ${(e as Error).message}`;
}
after(() => { useBackend(null); for (const b of opened) b.close(); });

const STEPS = 3;
const N = 8;

interface Run { state: Map<string, Tensor>; losses: number[]; perStep: { uploads: number; readbacks: number; readWords: number; waits: number }[] }

const mlp = (hidden: number[]): ModelSpec => ({ name: "mlp", input: 12, hidden, classes: 5 });
/** Attention's slices and concatenations, residual adds, layer norms, embeddings. */
const gpt = (depth: number): ModelSpec => ({ name: "gpt", vocab: 5, dim: 8, heads: 2, depth, context: 4 });
/** Convolutions, group norm, max pooling (its argmax stays on the device for the backward). */
const cnn = (channels: number[]): ModelSpec => ({ name: "cnn", image: 8, inChannels: 1, channels, hidden: 8, classes: 5, norm: "group", groups: 2 });

/** STEPS steps of SGD with momentum, everything made while `be` is the current backend. */
function train(be: WebGpuBackend, spec: ModelSpec): Run {
  useBackend(be);
  const model = createModel(spec, 3);
  const opt = new SGD(model.namedParameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 });
  const r = new Rng(9);
  const losses: number[] = [];
  const perStep: Run["perStep"] = [];
  for (let s = 0; s < STEPS; s++) {
    const x = spec.name === "gpt" ? new Tensor(Float32Array.from({ length: N * 4 }, () => r.int(5)), [N, 4])
      : Tensor.randn(spec.name === "cnn" ? [N, 1, 8, 8] : [N, 12], r);
    const y = Int32Array.from({ length: spec.name === "gpt" ? N * 4 : N }, () => r.int(5));
    const before = { ...be.counts };
    const loss = crossEntropyLoss(model.forward(x), y);
    losses.push(loss.item());
    backward(loss);
    opt.step();
    opt.zeroGrad();
    perStep.push({ uploads: be.counts.uploads - before.uploads, readbacks: be.counts.readbacks - before.readbacks,
      readWords: be.counts.readWords - before.readWords, waits: be.counts.waits - before.waits });
  }
  const state = model.stateDict();
  useBackend(null);
  return { state, losses, perStep };
}

function assertSameBits(a: Run, b: Run, what: string): void {
  assert.deepEqual(a.losses, b.losses, `${what}: losses`);
  for (const [k, w] of a.state) {
    const v = b.state.get(k);
    assert.ok(v, `${what}: ${k} missing`);
    for (let i = 0; i < w.size; i++) {
      if (!Object.is(w.data[i], v.data[i])) assert.fail(`${what}: ${k}[${i}] ${w.data[i]} vs ${v.data[i]}`);
    }
  }
}

test("resident and batched webgpu training equals the per-kernel round-trip path bit for bit", { skip }, () => {
  for (const spec of [mlp([16, 16]), gpt(2)]) {
    const oracle = train(open({ resident: false, batched: false }), spec);
    const resident = train(open({ resident: true, batched: false }), spec);
    const batched = train(open({}), spec);
    assertSameBits(oracle, resident, `${spec.name}: resident vs round trip`);
    assertSameBits(oracle, batched, `${spec.name}: batched vs round trip`);
    // The oracle really is the per-kernel path: it moves tensors for every kernel.
    for (const s of oracle.perStep) assert.ok(s.readbacks >= 20 && s.waits >= 20, `round trip step: ${JSON.stringify(s)}`);
  }
});

test("a resident, batched training step moves O(1) tensors and waits O(1) times, whatever the depth", { skip }, () => {
  const shallow = train(open({}), mlp([16]));
  const deep = train(open({}), mlp([16, 16, 16, 16]));
  // After the first step (which uploads the parameters once): the inputs and labels go up (the
  // labels once for the loss's forward and backward), the loss comes back as one number (summed on
  // the device), and only reading it waits.
  for (const run of [shallow, deep]) {
    for (const s of run.perStep.slice(1)) {
      assert.ok(s.uploads <= 2, `uploads per step ${JSON.stringify(s)}`);
      assert.ok(s.readbacks <= 1, `read-backs per step ${JSON.stringify(s)}`);
      assert.ok(s.readWords <= 1, `words read back per step ${JSON.stringify(s)}`);
      assert.ok(s.waits <= 1, `waits per step ${JSON.stringify(s)}`);
    }
  }
  assert.deepEqual(deep.perStep.slice(1), shallow.perStep.slice(1), "the same traffic per step for 2 and 5 layers");
  // Unbatched, the same step waits after every kernel.
  const unbatched = train(open({ batched: false }), mlp([16, 16, 16, 16]));
  for (const s of unbatched.perStep) assert.ok(s.waits > 10 * deep.perStep[1].waits, `unbatched waits ${JSON.stringify(s)}`);
});

test("a transformer step (slices, concatenations, residual adds, layer norms) stays on the device", { skip }, () => {
  // The token ids go up (once for the gather and its scatter-add), the labels once, the position
  // ids only in the first step (the same array every call); only the loss
  // comes back. Host copies (a slice, a gradient handed to two inputs, ones for a layer norm's
  // weight) would each add a read-back and an upload per block.
  const one = train(open({}), gpt(1));
  const three = train(open({}), gpt(3));
  for (const run of [one, three]) {
    for (const s of run.perStep.slice(1)) {
      assert.ok(s.uploads <= 2, `uploads per step ${JSON.stringify(s)}`);
      assert.ok(s.readWords <= 1 && s.waits <= 1, `read-backs per step ${JSON.stringify(s)}`);
    }
  }
  assert.deepEqual(three.perStep.slice(1), one.perStep.slice(1), "the same traffic per step for 1 and 3 blocks");
});

test("a CNN step (convolutions, group norm, max pooling) stays on the device, and equals the round-trip path", { skip }, () => {
  assertSameBits(train(open({ resident: false, batched: false }), cnn([4, 4])), train(open({}), cnn([4, 4])), "cnn: batched vs round trip");
  // Max pooling's argmax is written by the forward kernel and read by the backward one: a plain
  // Int32Array would be read back (a wait) at every pooling layer and uploaded again.
  for (const run of [train(open({}), cnn([4])), train(open({}), cnn([4, 4]))]) {
    for (const s of run.perStep.slice(1)) {
      assert.ok(s.uploads <= 2 && s.readWords <= 1 && s.waits <= 1, `traffic per step ${JSON.stringify(s)}`);
    }
  }
});

test("a checkpoint reads each parameter back once; host writes reach the device", { skip }, () => {
  const be = open({});
  const run = train(be, mlp([16]));
  const before = be.counts.readbacks;
  const n = [...run.state.values()].length;
  const copy1 = [...run.state.values()].map((t) => t.data.slice());
  assert.equal(be.counts.readbacks - before, n, "one read-back per parameter");
  const copy2 = [...run.state.values()].map((t) => t.data.slice());
  assert.equal(be.counts.readbacks - before, n, "a second read costs nothing");
  assert.deepEqual(copy2, copy1);
  // A host write (a checkpoint load) drops the device copy: the next kernel sees the new values.
  useBackend(be);
  const w = [...run.state.values()][0];
  w.data.fill(2);
  const doubled = Tensor.empty(w.shape);
  be.affine(w.data, 3, 0, doubled.data);
  useBackend(null);
  assert.ok(doubled.data.every((v) => v === 6), "the kernel read the host's new values");
});

test("a plain array read by kernels goes up once while its bits stay the same; a host write (even 0 to -0) goes up again", { skip }, () => {
  const be = open({});
  const x = Float32Array.from({ length: 9 }, (_, i) => i - 4);
  const neg = (): Float32Array => { const o = new Float32Array(9); be.unary("neg", x, o); return o; };
  const ups = (): number => be.counts.uploads;
  const u0 = ups();
  neg();
  neg();
  assert.equal(ups() - u0, 1, "read twice, uploaded once");
  x[2] = 7;
  assert.equal(neg()[2], -7, "the host's new value");
  x[4] = -0;
  assert.ok(Object.is(neg()[4], 0), "a sign change of zero counts as a change");
  assert.equal(ups() - u0, 3);
  const ids = Int32Array.of(1, 0, 1);
  const table = Float32Array.of(1, 2, 3, 4);
  const o = new Float32Array(6);
  be.gather(table, ids, 2, o);
  ids[0] = 0;
  be.gather(table, ids, 2, o);
  assert.deepEqual([...o], [1, 2, 1, 2, 3, 4], "changed ids reach the device");
});
