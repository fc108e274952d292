// Modules, layers and models: naming against PyTorch's state dicts, state loading errors, modes,
// initialisation statistics against torch's formulas, and behaviour checks with independent oracles.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";
import { backward, sum } from "../src/autograd/index.js";
import {
  BatchNorm2d, Conv2d, Dropout, Embedding, Linear, MultiHeadAttention, ReLU, Sequential, TransformerBlock,
  BENCH_CONFIGS, MODEL_NAMES, createModel, inputShape, resolveSpec, type ModelSpec,
} from "../src/nn/index.js";

const STATE_DICTS = new URL("../../fixtures/torch/state_dicts.json", import.meta.url);

function stats(t: Tensor): { mean: number; std: number; maxAbs: number } {
  let s = 0, s2 = 0, m = 0;
  for (const v of t.data) { s += v; s2 += v * v; m = Math.max(m, Math.abs(v)); }
  const mean = s / t.size;
  return { mean, std: Math.sqrt(s2 / t.size - mean * mean), maxAbs: m };
}

test("full-size models have PyTorch's state-dict names and shapes, in order", () => {
  const torchDicts = JSON.parse(readFileSync(STATE_DICTS, "utf8")) as { spec: ModelSpec; state: [string, number[]][] }[];
  assert.equal(torchDicts.length, 6);
  for (const { spec, state } of torchDicts) {
    const ours = [...createModel(spec, 1).stateDict()].map(([k, t]) => [k, [...t.shape]]);
    assert.deepEqual(ours, state, JSON.stringify(spec));
  }
});

test("parameters require grad, buffers do not; numParameters counts scalars", () => {
  const m = createModel({ name: "cnn", channels: [2, 3], hidden: 5, norm: "batch" }, 0);
  assert.ok(m.parameters().every((p) => p.requiresGrad));
  assert.ok(m.buffers().every((b) => !b.requiresGrad));
  assert.deepEqual(m.namedBuffers().map(([n]) => n), [
    "layers.1.running_mean", "layers.1.running_var", "layers.1.num_batches_tracked",
    "layers.5.running_mean", "layers.5.running_var", "layers.5.num_batches_tracked",
  ]);
  // conv 1->2 (no bias before BN) + bn 2+2, conv 2->3 + bn, fc 3*7*7 -> 5, fc 5 -> 10
  assert.equal(m.numParameters(), 18 + 4 + 54 + 6 + 147 * 5 + 5 + 50 + 10);
});

test("loadStateDict copies values and names missing, unexpected and mismatched keys", () => {
  const a = createModel({ name: "mlp", input: 4, hidden: [3], classes: 2 }, 1);
  const b = createModel({ name: "mlp", input: 4, hidden: [3], classes: 2 }, 2);
  assert.notDeepEqual(a.layers.at(1).parameters()[0].data, b.layers.at(1).parameters()[0].data);
  const snapshot = new Map([...a.stateDict()].map(([k, t]) => [k, t.clone()]));
  b.loadStateDict(snapshot);
  for (const [k, t] of b.stateDict()) assert.deepEqual(t.data, snapshot.get(k)!.data, k);
  // Loading copies: the model's tensors are not the given ones.
  assert.notEqual(b.stateDict().get("layers.1.weight"), snapshot.get("layers.1.weight"));

  const missing = new Map(snapshot); missing.delete("layers.3.bias");
  assert.throws(() => b.loadStateDict(missing), /missing keys: layers\.3\.bias/);
  b.loadStateDict(missing, false); // non-strict tolerates it

  const extra = new Map(snapshot); extra.set("layers.9.weight", Tensor.zeros([1]));
  assert.throws(() => b.loadStateDict(extra), /unexpected keys: layers\.9\.weight/);

  const wrong = new Map(snapshot); wrong.set("layers.1.weight", Tensor.zeros([3, 5]));
  assert.throws(() => b.loadStateDict(wrong, false), /shape mismatch: layers\.1\.weight: checkpoint \[3, 5\] vs model \[3, 4\]/);
});

test("train/eval propagate to every descendant; zeroGrad clears gradients", () => {
  const m = createModel({ name: "vit", dim: 8, depth: 1, heads: 2 }, 0);
  m.eval();
  assert.ok(m.namedModules().every(([, x]) => !x.training));
  m.train();
  assert.ok(m.namedModules().every(([, x]) => x.training));
  const x = Tensor.randn([2, 1, 28, 28], new Rng(3));
  backward(sum(m.forward(x)));
  assert.ok(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
});

test("Sequential names children 0, 1, …; children() and namedChildren() list them", () => {
  const rng = new Rng(0);
  const s = new Sequential([new Linear(2, 3, rng), new ReLU(), new Linear(3, 1, rng)]);
  assert.deepEqual(s.namedChildren().map(([n]) => n), ["0", "1", "2"]);
  assert.equal(s.children().length, 3);
  assert.deepEqual(s.namedParameters().map(([n]) => n), ["0.weight", "0.bias", "2.weight", "2.bias"]);
  const m = createModel({ name: "mlp" }, 0);
  assert.deepEqual(m.namedChildren().map(([n]) => n), ["layers"]);
  assert.equal(m.units.length, 6);
});

test("default initialisation follows torch: U(+-1/sqrt(fan_in)) for Linear/Conv, N(0,1) embeddings, 1/0 norms", () => {
  const rng = new Rng(11);
  const lin = new Linear(400, 300, rng);
  const bound = 1 / Math.sqrt(400);
  for (const t of [lin.weight, lin.bias!]) {
    const s = stats(t);
    assert.ok(s.maxAbs <= bound && s.maxAbs > 0.98 * bound, `max ${s.maxAbs} vs bound ${bound}`);
    if (t === lin.weight) {
      assert.ok(Math.abs(s.std - bound / Math.sqrt(3)) < 0.01 * bound, `std ${s.std}`);
      assert.ok(Math.abs(s.mean) < 0.01 * bound);
    }
  }
  const conv = new Conv2d(8, 16, 3, rng);
  const cb = 1 / Math.sqrt(8 * 9);
  assert.ok(stats(conv.weight).maxAbs <= cb && stats(conv.weight).maxAbs > 0.98 * cb);
  assert.ok(stats(conv.bias!).maxAbs <= cb);
  const emb = new Embedding(300, 100, rng);
  const es = stats(emb.weight);
  assert.ok(Math.abs(es.std - 1) < 0.02 && Math.abs(es.mean) < 0.02, `embedding ${JSON.stringify(es)}`);
  const bn = new BatchNorm2d(4);
  assert.deepEqual([...bn.weight.data, ...bn.bias.data, ...bn.runningVar.data, ...bn.runningMean.data],
    [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0]);
});

test("createModel is a function of the seed", () => {
  const spec: ModelSpec = { name: "gpt", vocab: 11, dim: 8, heads: 2, depth: 1, context: 5 };
  const a = createModel(spec, 5), b = createModel(spec, 5), c = createModel(spec, 6);
  const flat = (m: typeof a): number[] => m.parameters().flatMap((p) => [...p.data]);
  assert.deepEqual(flat(a), flat(b));
  assert.notDeepEqual(flat(a), flat(c));
});

test("bad specs: unknown model lists valid ones; bad fields are named", () => {
  assert.throws(() => createModel({ name: "resnet" } as unknown as ModelSpec, 0), /unknown model 'resnet'; valid models: mlp, cnn, vit, gpt/);
  assert.throws(() => resolveSpec({ name: "mlp", widths: [3] }), /unknown field 'widths'; valid fields: name, input, hidden, classes/);
  assert.throws(() => resolveSpec({ name: "cnn", norm: "layer" } as unknown as ModelSpec), /norm must be one of none, batch, group, got "layer"/);
  assert.throws(() => resolveSpec({ name: "vit", patch: 5 }), /image 28 must be divisible by patch 5/);
  assert.throws(() => resolveSpec({ name: "gpt", dim: 10, heads: 4 }), /dim 10 must be divisible by heads 4/);
  assert.throws(() => resolveSpec({ name: "mlp", classes: 0 }), /classes must be a positive integer, got 0/);
  assert.deepEqual([...MODEL_NAMES], ["mlp", "cnn", "vit", "gpt"]);
});

test("every model maps its input shape to logits of the documented shape", () => {
  const specs: ModelSpec[] = [
    { name: "mlp", hidden: [8] }, { name: "cnn", channels: [2, 3], hidden: 4 }, { name: "cnn", channels: [2, 4], hidden: 4, norm: "group" },
    { name: "vit", dim: 8, depth: 1, heads: 2 }, { name: "gpt", vocab: 13, dim: 8, heads: 2, depth: 1, context: 6 },
  ];
  for (const spec of specs) {
    const m = createModel(spec, 0);
    const shape = inputShape(spec, 3);
    const x = spec.name === "gpt" ? Tensor.from(Array.from({ length: 18 }, (_, i) => i % 13), shape) : Tensor.randn(shape, new Rng(1));
    const y = m.forward(x);
    assert.deepEqual([...y.shape], spec.name === "gpt" ? [3, 6, 13] : [3, 10], spec.name);
  }
  const gpt = createModel({ name: "gpt", vocab: 13, dim: 8, heads: 2, depth: 1, context: 6 }, 0);
  assert.throws(() => gpt.forward(Tensor.zeros([1, 7])), /ids \[1, 7\] must be \[B, T\] with 1 <= T <= context 6/);
});

test("BENCH_CONFIGS are the three benchmark configurations, identical to scripts/torch_models.py's", () => {
  const py = JSON.parse(readFileSync(new URL("../../fixtures/torch/bench_configs.json", import.meta.url), "utf8")) as unknown;
  // A JSON round trip on purpose: the configurations as JSON, the form the Python side wrote.
  assert.deepEqual(py, JSON.parse(JSON.stringify(BENCH_CONFIGS)));
  assert.deepEqual(BENCH_CONFIGS.map((c) => [c.model, c.batch, c.inputShape]), [
    ["mlp", 128, [128, 1, 28, 28]], ["cnn", 64, [64, 1, 28, 28]], ["gpt", 16, [16, 128]],
  ]);
  const counts = BENCH_CONFIGS.map((c) => createModel(c.spec, 0).numParameters());
  // 784*1024+1024 + 1024*1024+1024 + 1024*10+10; conv/fc sizes of the cnn; gpt: embeddings + 4 blocks + ln + head.
  assert.deepEqual(counts, [1863690, 421642, 256 * 256 + 128 * 256 + 4 * (12 * 256 * 256 + 13 * 256) + 512 + 256 * 256 + 256]);
});

test("causal attention: outputs at position t ignore tokens after t; non-causal ones do not", () => {
  const rng = new Rng(2);
  for (const causal of [true, false]) {
    const attn = new MultiHeadAttention(8, 2, new Rng(4), { causal });
    const x = Tensor.randn([1, 5, 8], rng);
    const y1 = attn.forward(x).data.slice();
    const x2 = x.clone();
    for (let i = 3 * 8; i < 5 * 8; i++) x2.data[i] += 1; // change tokens 3 and 4
    const y2 = attn.forward(x2).data;
    const firstThreeSame = y1.slice(0, 24).every((v, i) => Math.abs(v - y2[i]) < 1e-6);
    assert.equal(firstThreeSame, causal);
    assert.ok(y1.slice(24).some((v, i) => Math.abs(v - y2[24 + i]) > 1e-4));
  }
});

test("attention with one head equals softmax(q k^T / sqrt(d)) v computed by hand", () => {
  const attn = new MultiHeadAttention(2, 1, new Rng(9));
  // Identity qkv and output projection make q = k = v = x.
  attn.qkv.weight.data.set([1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1]);
  attn.qkv.bias!.data.fill(0);
  attn.proj.weight.data.set([1, 0, 0, 1]);
  attn.proj.bias!.data.fill(0);
  const x = [[1, 0], [0, 2], [1, 1]];
  const y = attn.forward(Tensor.from([x]));
  for (let i = 0; i < 3; i++) {
    const s = x.map((kj) => (x[i][0] * kj[0] + x[i][1] * kj[1]) / Math.sqrt(2));
    const e = s.map(Math.exp), z = e.reduce((a, b) => a + b);
    for (let d = 0; d < 2; d++) {
      const want = x.reduce((acc, vj, j) => acc + (e[j] / z) * vj[d], 0);
      assert.ok(Math.abs(y.data[i * 2 + d] - want) < 1e-6, `row ${i} dim ${d}: ${y.data[i * 2 + d]} vs ${want}`);
    }
  }
});

test("transformer block is pre-norm residual: zero output projections make it the identity", () => {
  const block = new TransformerBlock(8, 2, new Rng(1), { causal: true });
  block.attn.proj.weight.data.fill(0); block.attn.proj.bias!.data.fill(0);
  const fc2 = block.mlp.at(2) as Linear;
  fc2.weight.data.fill(0); fc2.bias!.data.fill(0);
  const x = Tensor.randn([2, 3, 8], new Rng(5));
  assert.deepEqual(block.forward(x).data, x.data);
  assert.deepEqual(block.namedParameters().map(([n]) => n), [
    "ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
    "ln2.weight", "ln2.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias",
  ]);
});

test("BatchNorm2d: running stats update in training (as torch), not in eval or with updateRunningStats off", () => {
  const bn = new BatchNorm2d(2);
  const x = Tensor.randn([4, 2, 3, 3], new Rng(8));
  bn.forward(x);
  // Oracle: channel mean and unbiased variance computed here.
  for (let c = 0; c < 2; c++) {
    const vals: number[] = [];
    for (let n = 0; n < 4; n++) for (let i = 0; i < 9; i++) vals.push(x.data[(n * 2 + c) * 9 + i]);
    const mu = vals.reduce((a, b) => a + b) / vals.length;
    const uvar = vals.reduce((a, b) => a + (b - mu) ** 2, 0) / (vals.length - 1);
    assert.ok(Math.abs(bn.runningMean.data[c] - 0.1 * mu) < 1e-6);
    assert.ok(Math.abs(bn.runningVar.data[c] - (0.9 + 0.1 * uvar)) < 1e-6);
  }
  assert.equal(bn.numBatchesTracked.item(), 1);
  const before = [...bn.runningMean.data, ...bn.runningVar.data];
  bn.updateRunningStats = false;
  const yTrain = bn.forward(x);
  assert.deepEqual([...bn.runningMean.data, ...bn.runningVar.data], before);
  assert.equal(bn.numBatchesTracked.item(), 1);
  bn.eval();
  const yEval = bn.forward(x);
  assert.deepEqual([...bn.runningMean.data, ...bn.runningVar.data], before);
  assert.notDeepEqual(yEval.data, yTrain.data);
});

test("Dropout: seeded masks repeat, eval is the identity, kept units are scaled by 1/(1-p)", () => {
  const x = Tensor.ones([1000]);
  const a = new Dropout(0.25, 3).forward(x), b = new Dropout(0.25, 3).forward(x);
  assert.deepEqual(a.data, b.data);
  const kept = a.data.filter((v) => v !== 0);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6));
  assert.ok(Math.abs(kept.length / 1000 - 0.75) < 0.05, `kept ${kept.length}`);
  const d = new Dropout(0.5, 1); d.eval();
  assert.equal(d.forward(x), x);
  assert.throws(() => new Dropout(1), /Dropout p must be in \[0, 1\), got 1/);
});

test("layer constructors reject bad sizes naming the value", () => {
  const rng = new Rng(0);
  assert.throws(() => new Linear(0, 3, rng), /Linear inFeatures must be a positive integer, got 0/);
  assert.throws(() => new Conv2d(1, 2, 3, rng, { stride: 0 }), /Conv2d stride must be a positive integer, got 0/);
  assert.throws(() => new MultiHeadAttention(10, 3, rng), /dim 10 must be divisible by heads 3/);
});
