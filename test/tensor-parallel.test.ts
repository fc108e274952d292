// Tensor and sequence parallelism: with R = 2 ranks on worker threads, a tensor-parallel MLP block,
// attention block and transformer block (with and without sequence parallelism), started from a
// single-device module's state dict split by name, give the single-device outputs, input gradient
// and parameter gradients (shards joined by name); a rank that throws ends the run with its rank and
// error; state dicts round-trip through shardStateDict / gatherStateDict; a group of one is the
// single-device module bit for bit.
//
// Tolerance: tensor parallelism computes the same functions, only float32 sums come in another order:
// a row-parallel matmul sums in/R products per rank and the all-reduce adds the R partial sums (one
// device: one dot product of `in` terms), its bias is added after that sum instead of first, and with
// sequence parallelism a LayerNorm / row-bias gradient is the sum of R per-chunk token sums. Each
// rounds differently by a few ulps. Column-parallel weight gradients are computed exactly as on one
// device (same rows). Measured on these shapes (values O(1), native and reference backends): outputs <= 2.4e-7,
// input gradients <= 2.6e-7, parameter gradients <= 7.2e-7 absolute. Allowed: 2e-6 + 2e-5 |ref|,
// far below what a wrong shard layout or a missing/duplicated reduction gives (O(0.1..1)).
import { test } from "node:test";
import assert from "node:assert/strict";
import { backward } from "../src/autograd/engine.js";
import { GELU } from "../src/nn/activation.js";
import { MultiHeadAttention } from "../src/nn/attention.js";
import { Linear } from "../src/nn/linear.js";
import { Module, Sequential } from "../src/nn/module.js";
import { TransformerBlock } from "../src/nn/transformer.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { createShmGroup, ShmCollectives } from "../src/transport/shm-collectives.js";
import {
  allReduceSequenceParallelGrads, gatherStateDict, joinShards, loadDenseState, runTensorParallel, scatterToSequenceParallel,
  shardStateDict, splitTensor, tensorParallelPlan, TensorParallelAttention, TensorParallelError, TensorParallelTransformerBlock,
  type BlockCheckInput, type BlockCheckOutput, type ShardPlan, type TpBlockKind,
} from "../src/parallel/index.js";
import { concat, slice } from "../src/autograd/index.js";

const D = 16, HEADS = 4, HIDDEN = 32, B = 2, T = 6, R = 2;
const ATOL = 2e-6, RTOL = 2e-5;

function denseModule(kind: TpBlockKind, seed = 5): Module {
  const rng = new Rng(seed);
  if (kind === "mlp") return new Sequential([new Linear(D, HIDDEN, rng), new GELU(), new Linear(HIDDEN, D, rng)]);
  if (kind === "attention") return new MultiHeadAttention(D, HEADS, rng, { causal: true });
  return new TransformerBlock(D, HEADS, rng, { causal: true });
}

interface DenseRun { module: Module; x: Tensor; dy: Tensor; y: Tensor }

/** The oracle: the single-device module, one forward + backward. */
function runDense(kind: TpBlockKind): DenseRun {
  const module = denseModule(kind);
  const rng = new Rng(9);
  const x = Tensor.randn([B, T, D], rng, 1);
  x.requiresGrad = true;
  const dy = Tensor.randn([B, T, D], rng, 1);
  const y = module.forward(x);
  backward(y, [dy]);
  return { module, x, dy, y };
}

function checkInput(kind: TpBlockKind, d: DenseRun, sequenceParallel: boolean): BlockCheckInput {
  return {
    kind, dim: D, hidden: HIDDEN, heads: HEADS, causal: true, sequenceParallel,
    state: [...d.module.stateDict()].map(([k, t]) => [k, t.data, [...t.shape]]),
    x: { data: d.x.data, shape: [...d.x.shape] }, dy: { data: d.dy.data, shape: [...d.dy.shape] },
  };
}

function assertClose(got: Float32Array, want: Float32Array, what: string): number {
  assert.equal(got.length, want.length, `${what}: ${got.length} vs ${want.length} elements`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    worst = Math.max(worst, e);
    assert.ok(e <= ATOL + RTOL * Math.abs(want[i]), `${what}[${i}]: tensor-parallel ${got[i]} vs single-device ${want[i]}`);
  }
  return worst;
}

const toMap = (entries: BlockCheckOutput["grads"]): Map<string, Tensor> => new Map(entries.map(([k, d, s]) => [k, new Tensor(d, s)]));

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms (hang)`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function compareWithDense(kind: TpBlockKind, sequenceParallel: boolean): Promise<BlockCheckOutput[]> {
  const d = runDense(kind);
  const outs = await withTimeout(runTensorParallel<BlockCheckInput, BlockCheckOutput>({
    size: R, task: "checkBlock", input: checkInput(kind, d, sequenceParallel),
  }), 20_000, `${kind} R=${R}`);
  const plan = outs[0].plan;
  // Every rank ends with the whole output and the whole input gradient.
  outs.forEach((o, r) => {
    assert.deepEqual(o.y.shape, [...d.y.shape]);
    assertClose(o.y.data, d.y.data, `rank ${r} output`);
    assert.ok(o.dx, `rank ${r} has no input gradient`);
    assertClose(o.dx.data, d.x.grad!.data, `rank ${r} input gradient`);
  });
  // Shards really are shards: each split parameter's gradient is 1/R of the whole on every rank.
  const dense = new Map(d.module.namedParameters());
  for (const [k, g] of outs[0].grads) {
    const spec = plan[k] ?? { kind: "replicate" };
    assert.equal(g.length, spec.kind === "split" ? dense.get(k)!.size / R : dense.get(k)!.size, `${k}: shard size`);
  }
  // Replicated parameters' gradients agree on every rank, bit for bit (SP-partial ones after the sum).
  for (const [k, g] of outs[0].grads) {
    if (plan[k]?.kind === "split") continue;
    for (let r = 1; r < R; r++) assert.deepEqual(toMap(outs[r].grads).get(k)!.data, g, `${k}: rank ${r} vs rank 0`);
  }
  const grads = gatherStateDict(outs.map((o) => toMap(o.grads)), plan);
  assert.deepEqual([...grads.keys()], [...dense.keys()], "gathered gradient names = single-device parameter names");
  for (const [k, p] of dense) assertClose(grads.get(k)!.data, p.grad!.data, `grad ${k}`);
  return outs;
}

test("tensor-parallel MLP (column -> GELU -> row), R = 2 threads: outputs and gradients of the single-device MLP", async () => {
  await compareWithDense("mlp", false);
});

test("tensor-parallel attention (heads split), R = 2 threads: outputs and gradients of MultiHeadAttention", async () => {
  await compareWithDense("attention", false);
});

test("tensor-parallel TransformerBlock, R = 2 threads, without and with sequence parallelism", async () => {
  await compareWithDense("block", false);
  const a = await compareWithDense("block", true);
  // Fixed reduction order: a second run gives the same bits, whatever the thread timing.
  const b = await compareWithDense("block", true);
  a.forEach((o, r) => {
    assert.deepEqual(b[r].y.data, o.y.data, `rank ${r} output, run 2 vs run 1`);
    assert.deepEqual(b[r].grads, o.grads, `rank ${r} gradients, run 2 vs run 1`);
  });
});

test("sequence-parallel MLP and attention alone (all-gather in, reduce-scatter out), R = 2 threads", async () => {
  await compareWithDense("mlp", true);
  await compareWithDense("attention", true);
});

test("a rank that throws ends the run with its rank and error, no hang", async () => {
  const d = runDense("block");
  for (const rank of [0, 1]) {
    // The other rank is then blocked in a backward all-reduce that the failed rank never joins.
    const run = runTensorParallel<BlockCheckInput, BlockCheckOutput>({
      size: R, task: "checkBlock", input: checkInput("block", d, true), faults: [{ rank, at: "forward", message: "boom" }],
    });
    await assert.rejects(withTimeout(run, 10_000, "failing run"), (e: unknown) => {
      assert.ok(e instanceof TensorParallelError, `got ${String(e)}`);
      assert.equal(e.rank, rank);
      assert.match(e.message, /rank \d failed: boom/);
      return true;
    });
  }
  // An unknown task is a clear error from every rank, not a hang.
  await assert.rejects(withTimeout(runTensorParallel({ size: R, task: "noSuchTask", input: null }), 10_000, "bad task"),
    /task 'noSuchTask' is not a function exported by .*tp-tasks\.js; exported: .*checkBlock/);
});

test("shardStateDict / gatherStateDict round-trip; qkv shards hold the q, k and v rows of the rank's heads", () => {
  const dense = denseModule("block").stateDict();
  const single = new ShmCollectives(createShmGroup(1, 1), 0);
  const plan: ShardPlan = tensorParallelPlan(new TensorParallelTransformerBlock(D, HEADS, single, { sequenceParallel: true }));
  // A size-1 group has nothing partial; the plan of a size-R block comes from the worker runs above.
  assert.deepEqual(plan["attn.qkv.weight"], { kind: "split", axis: 0, blocks: 3 });
  assert.deepEqual(plan["attn.proj.weight"], { kind: "split", axis: 1, blocks: 1 });
  assert.deepEqual(plan["mlp.0.bias"], { kind: "split", axis: 0, blocks: 1 });
  for (const size of [1, 2, 4]) {
    const shards = [...Array(size).keys()].map((r) => shardStateDict(dense, plan, r, size));
    const back = gatherStateDict(shards, plan);
    for (const [k, t] of dense) assert.deepEqual(back.get(k)!.data, t.data, `${k} after shard + gather over ${size}`);
  }
  // Independent oracle for the fused projection: rank r's rows are q, k, v rows of heads r*H/R.. .
  const w = dense.get("attn.qkv.weight")!;
  const rows = D / R;
  for (let r = 0; r < R; r++) {
    const want = concat([0, 1, 2].map((b) => slice(w, 0, b * D + r * rows, b * D + (r + 1) * rows)), 0);
    assert.deepEqual(shardStateDict(dense, plan, r, R).get("attn.qkv.weight")!.data, want.data, `qkv shard of rank ${r}`);
    const proj = dense.get("attn.proj.weight")!;
    assert.deepEqual(splitTensor(proj, plan["attn.proj.weight"], r, R).data, slice(proj, 1, r * rows, (r + 1) * rows).data);
  }
  assert.deepEqual(joinShards([Tensor.from([1, 2, 3, 4, 5, 6], [6]), Tensor.from([7, 8, 9, 10, 11, 12], [6])], { kind: "split", axis: 0, blocks: 3 }).data,
    Float32Array.from([1, 2, 7, 8, 3, 4, 9, 10, 5, 6, 11, 12]));
  // Bad input names the tensor and what would work.
  assert.throws(() => splitTensor(Tensor.zeros([6, 4]), { kind: "split", axis: 0, blocks: 1 }, 0, 4, "fc.weight"),
    /cannot shard fc.weight \[6, 4\] over 4 ranks: axis 0 \(6\) must be a multiple of 1 block\(s\) x 4 ranks/);
  assert.throws(() => shardStateDict(dense, { "nope.weight": { kind: "split", axis: 0, blocks: 1 } }, 0, 2), /plan names tensors the state dict lacks: nope.weight/);
});

test("a group of one is the single-device block bit for bit (TP and SP code paths, no collectives)", () => {
  const single = new ShmCollectives(createShmGroup(1, 1), 0);
  const d = runDense("block");
  for (const sp of [false, true]) {
    const tp = new TensorParallelTransformerBlock(D, HEADS, single, { causal: true, sequenceParallel: sp });
    loadDenseState(tp, d.module.stateDict(), single);
    const x = new Tensor(d.x.data, d.x.shape, true);
    const y = tp.forward(sp ? scatterToSequenceParallel(x, single) : x);
    backward(y, [d.dy]);
    allReduceSequenceParallelGrads(tp, single);
    assert.deepEqual(y.data, d.y.data);
    assert.deepEqual(x.grad!.data, d.x.grad!.data);
    const dense = new Map(d.module.namedParameters());
    for (const [k, p] of tp.namedParameters()) assert.deepEqual(p.grad!.data, dense.get(k)!.grad!.data, `${k} (sp ${sp})`);
  }
});

test("bad tensor-parallel shapes fail with the value and what is allowed", () => {
  const pair = new ShmCollectives(createShmGroup(2, 1), 0); // never communicates: every check fails first
  assert.throws(() => new TensorParallelAttention(12, 3, pair), /heads 3 must be a positive multiple of the tensor-parallel size 2/);
  assert.throws(() => new TensorParallelTransformerBlock(16, 4, pair, { mlpRatio: 1.5 / 16 }), /multiple of the tensor-parallel size 2/);
  assert.throws(() => scatterToSequenceParallel(Tensor.zeros([1, 5, 4]), pair),
    /cannot split 5 entries of axis -2 of \[1, 5, 4\] into 2 equal chunks \(one per rank\): 5 must be a multiple of 2/);
  assert.throws(() => scatterToSequenceParallel(Tensor.zeros([4]), pair), /must have a sequence axis and a feature axis/);
});
