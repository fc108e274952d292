// Training on the webgpu backend (Mesa's llvmpipe where there is no GPU): gradient checks through
// autograd against finite differences on small shapes (every kernel family), and a 2-stage 1F1B pipeline whose threads
// executor reproduces the inline executor bit for bit and whose weights match single-device training
// on the reference backend (1e-5 relative). Skips, saying why, where no WebGPU adapter opens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { getBackend, setBackend } from "../src/backend/index.js";
import type { WebGpuBackend } from "../src/backend/webgpu/backend.js";
import { backward } from "../src/autograd/engine.js";
import {
  avgPool2d, batchNorm, causalMask, conv2d, crossEntropy, embedding, gelu, groupNorm, layerNorm, linear, matmul, maxPool2d,
  add, concat, dropout, mul, permute, sigmoid, slice, softmax, sum, tanh,
} from "../src/autograd/index.js";
import { gradcheck } from "../src/autograd/gradcheck.js";
import { splitBatch } from "../src/data/microbatch.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { SGD } from "../src/optim/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import type { OptimizerConfig, PipelineSetup } from "../src/pipeline/runtime/setup.js";
import type { Executor } from "../src/pipeline/runtime/executor.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

let skip: string | false = false;
try {
  setBackend("webgpu");
} catch (e) {
  skip = `no WebGPU adapter, skipping webgpu training tests: ${(e as Error).message}`;
}

const rng = new Rng(777);
const randn = (shape: number[]): Tensor => Tensor.randn(shape, rng, 1, true);

function check(label: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[]): void {
  const r = gradcheck(f, inputs);
  assert.ok(r.checked > 0, `${label}: nothing checked`);
  assert.ok(r.ok, `${label}: ${r.worst}`);
}

test("dropout on webgpu draws the reference backend's mask for the same seed", { skip }, () => {
  const x = Tensor.randn([7, 300], rng);
  const run = (backend: "webgpu" | "reference"): Float32Array => {
    setBackend(backend);
    return dropout(new Tensor(x.data.slice(), x.shape), 0.4, new Rng(11), true).data.slice();
  };
  const [gpu, cpu] = [run("webgpu"), run("reference")];
  setBackend("webgpu");
  for (let i = 0; i < cpu.length; i++) if (!Object.is(gpu[i], cpu[i])) assert.fail(`element ${i}: webgpu ${gpu[i]}, reference ${cpu[i]}`);
  assert.ok(cpu.some((v) => v === 0) && cpu.some((v) => v !== 0), "some dropped, some kept");
});

test("gradients through autograd on webgpu match finite differences", { skip }, () => {
  setBackend("webgpu");
  check("linear + gelu", (x, w, b) => gelu(linear(x, w, b)), [randn([3, 5]), randn([4, 5]), randn([4])]);
  check("batched matmul", (a, b) => matmul(a, b), [randn([2, 3, 4]), randn([2, 4, 5])]);
  check("tanh * sigmoid, broadcast", (a, b) => mul(tanh(a), sigmoid(b)), [randn([2, 3, 4]), randn([3, 1])]);
  check("softmax over a permuted causal mask", (x) => softmax(causalMask(permute(x, [0, 2, 1]))), [randn([2, 4, 4])]);
  check("layer norm", (x, g, b) => layerNorm(x, g, b), [randn([3, 6]), Tensor.uniform([6], rng, 0.5, 1.5, true), randn([6])]);
  check("cross-entropy", (x) => crossEntropy(x, Int32Array.from([0, 3, 2])), [randn([3, 4])]);
  check("sum over an axis", (x) => sum(x, 1), [randn([2, 3, 4])]);
  check("dropout (its mask made on the device)", (x) => dropout(x, 0.3, new Rng(3), true), [randn([4, 5])]);
  check("slice and concat (copies on the device), a residual add", (x, y) =>
    add(mul(concat([slice(x, 1, 2, 4), y, slice(x, 1, 0, 2)], 1), concat([y, x], 1)), concat([x, y], 1)),
  [randn([2, 4, 3]), randn([2, 3, 3])]);
  const ids = new Tensor(Float32Array.from([1, 0, 3, 1, 2]), [5]);
  check("embedding", (w) => embedding(w, ids), [randn([4, 3])]);
  check("conv2d, stride 2, padding 1", (x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }),
    [randn([2, 2, 5, 5]), randn([3, 2, 3, 3]), randn([3])]);
  check("average pooling", (x) => avgPool2d(x, 3, 2, 1), [randn([1, 2, 5, 5])]);
  check("max pooling (distinct inputs: no ties within the step)", (x) => maxPool2d(x, 2), [distinct([1, 2, 4, 4])]);
  const gamma = (c: number): Tensor => Tensor.uniform([c], rng, 0.5, 1.5, true);
  check("group norm", (x, g, b) => groupNorm(x, 2, g, b), [randn([2, 4, 3, 3]), gamma(4), randn([4])]);
  check("batch norm (training statistics)", (x, g, b) => batchNorm(x, g, b, null, null, true), [randn([3, 2, 2, 2]), gamma(2), randn([2])]);
});

/** A shuffled arithmetic sequence with spacing 0.1, so max pooling has no near-ties. */
function distinct(shape: number[]): Tensor {
  const t = Tensor.zeros(shape, true);
  const perm = rng.permutation(t.size);
  for (let i = 0; i < t.size; i++) t.data[i] = (perm[i] - t.size / 2) * 0.1;
  return t;
}

const MLP: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16], classes: 5 };
/** Convolution, group norm, ReLU and max pooling in both stages. */
const CNN: ModelSpec = { name: "cnn", image: 8, inChannels: 1, channels: [4, 4], hidden: 8, classes: 3, norm: "group", groups: 2 };
/** Batch norm: the stage keeps its statistics over the micro-batches and commits them at the step. */
const CNN_BN: ModelSpec = { ...CNN, norm: "batch" };
const OPT: OptimizerConfig = { name: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-3 };
const N = 8;
const SEED = 3;

function batches(spec: ModelSpec): { x: Tensor; y: Int32Array }[] {
  const r = new Rng(9);
  const [shape, classes] = spec.name === "mlp" ? [[N, 12], 5] : [[N, 1, 8, 8], 3];
  return Array.from({ length: 2 }, () => ({ x: Tensor.randn(shape, r), y: Int32Array.from({ length: N }, () => r.int(classes)) }));
}

type Traffic = Pick<WebGpuBackend["counts"], "uploads" | "waits">;

async function pipeline(spec: ModelSpec, kind: "inline" | "threads", traffic: Traffic[] = []): Promise<{ state: Map<string, Tensor>; losses: number[] }> {
  const schedule = generateSchedule("1f1b", { stages: 2, microbatches: 4, chunks: 1 });
  const model = createModel(spec, SEED);
  const setup: PipelineSetup = { model: spec, seed: SEED, schedule, balance: uniformBalance(model.units.length, 2),
    recompute: "never", optimizer: OPT };
  const ex: Executor = kind === "inline" ? new InlineExecutor(model, setup) : await ThreadsExecutor.create(setup, model.stateDict());
  try {
    const losses: number[] = [];
    const counts = getBackend().name === "webgpu" ? (getBackend() as WebGpuBackend).counts : null;
    for (const b of batches(spec)) {
      const parts = splitBatch(b, 4);
      const before = { ...counts };
      losses.push((await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N })).loss);
      if (counts) traffic.push({ uploads: counts.uploads - before.uploads!, waits: counts.waits - before.waits! });
    }
    return { state: await ex.stateDict(), losses };
  } finally {
    await ex.close();
  }
}

function singleDevice(spec: ModelSpec): Map<string, Tensor> {
  const model = createModel(spec, SEED);
  const opt = new SGD(model.namedParameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 });
  for (const b of batches(spec)) {
    backward(crossEntropyLoss(model.forward(b.x), b.y));
    opt.step();
    opt.zeroGrad();
  }
  return model.stateDict();
}

for (const spec of [MLP, CNN, CNN_BN]) {
  test(`a 2-stage 1F1B pipeline (${spec.name}${spec === CNN_BN ? ", batch norm" : ""}) on webgpu: threads equal inline bit for bit, and both match the reference backend`,
    { skip }, async () => {
      setBackend("reference");
      // Batch norm normalises each micro-batch by its own statistics: the oracle is the same
      // pipeline on the reference backend, not single-device training.
      const expected = spec === CNN_BN ? (await pipeline(spec, "inline")).state : singleDevice(spec);
      setBackend("webgpu");
      const inline = await pipeline(spec, "inline");
      const threads = await pipeline(spec, "threads");
      assert.deepEqual(threads.losses, inline.losses, "losses");
      for (const [k, w] of inline.state) {
        const t = threads.state.get(k);
        assert.ok(t, `threads state has ${k}`);
        for (let i = 0; i < w.size; i++) {
          if (!Object.is(w.data[i], t.data[i])) assert.fail(`${k}[${i}]: inline ${w.data[i]}, threads ${t.data[i]}`);
        }
        const e = expected.get(k);
        assert.ok(e, `reference state has ${k}`);
        let diff = 0, scale = 0;
        for (let i = 0; i < w.size; i++) { diff = Math.max(diff, Math.abs(w.data[i] - e.data[i])); scale = Math.max(scale, Math.abs(e.data[i])); }
        assert.ok(diff <= 1e-5 * scale, `${k}: webgpu pipeline differs from the reference by ${diff.toExponential(3)} (max |w| ${scale})`);
      }
    });
}

test("a 2-stage pipeline step on webgpu waits once per micro-batch on the last stage and uploads its inputs and labels once",
  { skip }, async () => {
    setBackend("webgpu");
    // 4 micro-batches; the second step (the first uploads the weights). Inline: no messages to read.
    const traffic: Traffic[] = [];
    const withCounts = await pipeline(MLP, "inline", traffic);
    assert.ok(traffic[1].waits <= 4, `waits per step ${JSON.stringify(traffic[1])}`);
    // Each micro-batch's inputs and labels go up once (the loss and the count share the labels).
    assert.ok(traffic[1].uploads <= 8, `uploads per step ${JSON.stringify(traffic[1])}`);
    // Reading both together changes no result: the same as the threads executor, which reads them
    // on a worker thread's own backend.
    assert.deepEqual(withCounts.losses, (await pipeline(MLP, "threads")).losses, "losses");
  });

test("a pipeline with batch norm reads each batch norm input back once per micro-batch, nothing for the running averages",
  { skip }, async () => {
    setBackend("webgpu");
    const traffic: Traffic[] = [];
    await pipeline(CNN_BN, "inline", traffic);
    // 4 micro-batches: the loss (with the count) and one read of each of the 2 batch norm inputs per
    // micro-batch for the float64 statistics; the running averages stay on the host until the step.
    assert.ok(traffic[1].waits <= 4 * 3, `waits per step ${JSON.stringify(traffic[1])}`);
    assert.ok(traffic[1].uploads <= 8, `uploads per step ${JSON.stringify(traffic[1])}`);
  });
