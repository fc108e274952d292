// Data parallelism on worker threads: R replicas on a mini-batch train to the weights one device
// reaches on the whole batch; two runs are bit-identical; replicas stay identical (BatchNorm buffers
// included); the backend choice reaches the workers; a throwing replica ends the run, never hangs.
//
// Tolerance (documented in src/api/data-parallel.ts): replicas compute the same mean-loss
// gradient as one device, but float32 sums come in a different order. One device sums the n
// per-example contributions to a weight gradient inside one matmul; R replicas each sum their shard
// (n/R examples, its loss scaled by 1/n instead of the mean's 1/n applied inside cross-entropy) and
// the all-reduce adds the R partial sums. Each ordering rounds differently by a few ulps of the
// gradient; momentum SGD carries the differences over steps. Measured on this MLP after 3 steps: at
// most ~1.5e-8 absolute (~3e-7 relative to the weight), both backends; the test allows
// 1e-7 + 1e-5 * |w| (the same 1e-5 relative bound the pipeline equivalence uses).
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { backward } from "../src/autograd/engine.js";
import { getBackend, loadNative, useBackend, setBackend } from "../src/backend/index.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { createOptimizer, type OptimizerConfig, type OptimizerState } from "../src/optim/index.js";
import { DataParallel, DataParallelError, type DataParallelOptions } from "../src/api/data-parallel.js";
import { GradientAllReducer } from "../src/parallel/index.js";
import type { ReduceOp, SyncCollectives } from "../src/transport/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

const SPEC: ModelSpec = { name: "mlp", input: 20, hidden: [32, 16], classes: 5 };
const OPT: OptimizerConfig = { name: "sgd", lr: 0.1, momentum: 0.9 };
const SEED = 3;
const N = 10; // R = 3 shards it 4/3/3

function batches(count: number, seed = 7): { x: Tensor; y: Int32Array }[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => ({ x: Tensor.randn([N, 20], rng, 1), y: Int32Array.from({ length: N }, () => rng.int(5)) }));
}

/** The oracle: one device, whole batch, mean cross-entropy, same optimizer (what src/train/loop.ts does). */
function singleDevice(bs: { x: Tensor; y: Int32Array }[]): Map<string, Tensor> {
  const model = createModel(SPEC, SEED);
  const opt = createOptimizer(OPT, model.namedParameters());
  for (const b of bs) {
    opt.zeroGrad();
    backward(crossEntropyLoss(model.forward(b.x), b.y));
    opt.step();
  }
  return model.stateDict();
}

function maxDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): { abs: number; rel: number } {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  let abs = 0, rel = 0;
  for (const [k, t] of b) {
    const d = a.get(k)!.data;
    for (let i = 0; i < d.length; i++) {
      const e = Math.abs(d[i] - t.data[i]);
      abs = Math.max(abs, e);
      rel = Math.max(rel, e / Math.max(Math.abs(t.data[i]), 1e-3));
      assert.ok(e <= 1e-7 + 1e-5 * Math.abs(t.data[i]), `${k}[${i}]: replicas ${d[i]} vs one device ${t.data[i]}`);
    }
  }
  return { abs, rel };
}

function assertBitEqual(a: Map<string, Tensor>, b: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, t] of a) assert.deepEqual(t.data, b.get(k)!.data, `${what}: ${k}`);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms (hang)`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}


/** Every replica's parameters and buffers, in rank order (to check they agree). */
async function replicaStates(dp: DataParallel): Promise<Map<string, Tensor>[]> {
  const out: Map<string, Tensor>[] = [];
  for (let r = 0; r < dp.replicas; r++) out.push(await dp.stateDict(r));
  return out;
}

/** Trains on every batch with R replicas (LR factor per 0-based step); the per-step losses and the final state. */
async function trainDataParallel(o: DataParallelOptions & { batches: { x: Tensor; y: Int32Array }[]; lrSchedule?: (step: number) => number }):
  Promise<{ losses: number[]; state: Map<string, Tensor>; optimizerState: OptimizerState }> {
  const dp = await DataParallel.create(o);
  try {
    const losses: number[] = [];
    for (const [k, b] of o.batches.entries()) losses.push((await dp.step(b.x, b.y, o.lrSchedule ? o.lrSchedule(k) : 1)).loss);
    return { losses, state: await dp.stateDict(0), optimizerState: await dp.optimizerState() };
  } finally {
    await dp.close();
  }
}

for (const R of [1, 2, 3]) {
  test(`R = ${R} replicas x 3 SGD-momentum steps = one device on the whole batch; replicas identical`, async (t) => {
    const bs = batches(3);
    const dp = await DataParallel.create({ spec: SPEC, seed: SEED, replicas: R, optimizer: OPT });
    try {
      let loss = 0;
      for (const b of bs) loss = (await withTimeout(dp.step(b.x, b.y), 20_000, "step")).loss;
      assert.ok(Number.isFinite(loss) && loss > 0);
      const states = await replicaStates(dp);
      for (let r = 1; r < R; r++) assertBitEqual(states[r], states[0], `replica ${r} vs replica 0`);
      const d = maxDiff(states[0], singleDevice(bs));
      // R replicas sum the same gradients in another order: float32 rounding only.
      assert.ok(d.rel <= 1e-5, `replicas vs one device: max relative difference ${d.rel}`);
      // One replica is the one-device computation: the same bits (native kernels).
      if (R === 1 && dp.backend === "native") assertBitEqual(states[0], singleDevice(bs), "R = 1 vs one device");
      t.diagnostic(`backend ${dp.backend}: max |replicas - one device| = ${d.abs.toExponential(2)} (relative ${d.rel.toExponential(2)})`);
    } finally {
      await dp.close();
    }
  });
}

test("two runs of R = 2 and R = 3 replicas give bit-identical weights and losses (fixed reduction order)", async () => {
  const bs = batches(3, 21);
  for (const R of [2, 3]) {
    const a = await trainDataParallel({ spec: SPEC, seed: SEED, replicas: R, optimizer: OPT, batches: bs, lrSchedule: (k) => 1 - 0.2 * k });
    const b = await trainDataParallel({ spec: SPEC, seed: SEED, replicas: R, optimizer: OPT, batches: bs, lrSchedule: (k) => 1 - 0.2 * k });
    assert.deepEqual(a.losses, b.losses);
    assertBitEqual(a.state, b.state, `R=${R} run 1 vs run 2`);
    assertBitEqual(a.optimizerState.tensors, b.optimizerState.tensors, `R=${R} momentum buffers`);
    // The schedule reached the workers: a run without it ends elsewhere.
    const c = await trainDataParallel({ spec: SPEC, seed: SEED, replicas: R, optimizer: OPT, batches: bs });
    assert.notDeepEqual(c.state.get("layers.1.weight")!.data, a.state.get("layers.1.weight")!.data);
  }
});

test("BatchNorm running statistics: every replica commits the whole batch's, so replicas stay bit-identical", async () => {
  const spec: ModelSpec = { name: "cnn", image: 8, channels: [4], hidden: 8, classes: 3, norm: "batch" };
  const rng = new Rng(2);
  const dp = await DataParallel.create({ spec, seed: 1, replicas: 2, optimizer: { name: "sgd", lr: 0.05, momentum: 0.9 } });
  try {
    for (let k = 0; k < 2; k++) await dp.step(Tensor.randn([6, 1, 8, 8], rng, 1), Int32Array.from({ length: 6 }, () => rng.int(3)));
    const [a, b] = await replicaStates(dp);
    assertBitEqual(a, b, "replica 1 vs 0");
    const rm = a.get("layers.1.running_mean")!.data;
    assert.ok(rm.some((v) => v !== 0), "running statistics were updated");
  } finally {
    await dp.close();
  }
});

test("the backend reaches the workers: reference when chosen (PIPEWRIGHT_BACKEND), single-threaded native otherwise", async () => {
  const before = getBackend();
  const prev = useBackend(null);
  try {
    setBackend("reference");
    const bs = batches(2);
    const dp = await DataParallel.create({ spec: SPEC, seed: SEED, replicas: 2, optimizer: OPT });
    try {
      assert.equal(dp.backend, "reference");
      assert.deepEqual(dp.nativeThreads, [null, null]);
      for (const b of bs) await dp.step(b.x, b.y);
      const d = maxDiff(await dp.stateDict(), singleDevice(bs)); // the oracle runs on the reference backend too
      assert.ok(d.rel <= 1e-5, `reference replicas vs one device: max relative difference ${d.rel}`);
    } finally {
      await dp.close();
    }
  } finally {
    useBackend(prev);
  }
  if (loadNative()) {
    const dp = await DataParallel.create({ spec: SPEC, seed: SEED, replicas: 2, optimizer: OPT, backend: "native" });
    try {
      assert.equal(dp.backend, "native");
      assert.deepEqual(dp.nativeThreads, [1, 1], "kernels must not fork inside a replica");
    } finally {
      await dp.close();
    }
  }
  assert.equal(getBackend(), before, "the test puts this thread's backend back");
});

test("PIPEWRIGHT_BACKEND=reference in the environment puts every replica on the reference backend", () => {
  const mod = new URL("../src/api/data-parallel.js", import.meta.url).href;
  const script = `const { DataParallel } = await import(${JSON.stringify(mod)});
    const dp = await DataParallel.create({ spec: { name: "mlp", input: 4, hidden: [4], classes: 2 }, seed: 1, replicas: 2, optimizer: { name: "sgd", lr: 0.1 } });
    console.log(JSON.stringify({ backend: dp.backend, threads: dp.nativeThreads })); await dp.close();`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, PIPEWRIGHT_BACKEND: "reference" }, encoding: "utf8", timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { backend: "reference", threads: [null, null] });
});

test("a replica that throws ends the run, naming the replica and the error; no thread is left running", { timeout: 120_000 }, async () => {
  const bs = batches(3);
  const dp = await DataParallel.create({
    spec: SPEC, seed: SEED, replicas: 3, optimizer: OPT, faults: [{ replica: 1, step: 1, message: "boom in replica 1" }],
  });
  try {
    await dp.step(bs[0].x, bs[0].y);
    // The outcome, not its speed: the step rejects (a hang would meet the test's timeout instead).
    await assert.rejects(dp.step(bs[1].x, bs[1].y), (e: Error) => {
      assert.ok(e instanceof DataParallelError);
      assert.equal(e.replica, 1);
      assert.match(e.message, /replica 1 failed: boom in replica 1/);
      return true;
    });
    while (dp.liveReplicas > 0) await new Promise((r) => setTimeout(r, 20));
    assert.equal(dp.liveReplicas, 0, "replica threads still running after the failure");
    await assert.rejects(dp.step(bs[2].x, bs[2].y), /replica 1/);
  } finally {
    await dp.close();
  }
});

test("GradientAllReducer without shared memory: flattens in parameter order, fills missing gradients, skips frozen ones", () => {
  // A stand-in for rank 0 of a 2-rank group whose other rank contributes 10, 20, 30, ...
  const seen: Float32Array[] = [];
  const comm: SyncCollectives = {
    rank: 0, size: 2,
    allReduceSync(buf: Float32Array, op: ReduceOp = "sum") {
      seen.push(buf.slice());
      for (let i = 0; i < buf.length; i++) buf[i] = op === "sum" ? buf[i] + 10 * (i + 1) : (buf[i] + 10 * (i + 1)) / 2;
    },
    broadcastSync() { throw new Error("unused"); }, barrierSync() { throw new Error("unused"); },
    allReduce: () => Promise.reject(new Error("unused")), broadcast: () => Promise.reject(new Error("unused")),
    barrier: () => Promise.reject(new Error("unused")), abort() {}, close() {},
  };
  const a = new Tensor(new Float32Array(2), [2], true), b = new Tensor(new Float32Array(3), [3], true);
  const frozen = new Tensor(new Float32Array(1), [1], false);
  a.grad = new Tensor(Float32Array.of(1, 2), [2]);
  const r = new GradientAllReducer([["a", a], ["frozen", frozen], ["b", b]], comm);
  assert.equal(r.size, 5);
  r.allReduceSync("sum");
  assert.deepEqual([...seen[0]], [1, 2, 0, 0, 0]);
  assert.deepEqual([...a.grad.data], [11, 22]);
  assert.deepEqual([...b.grad!.data], [30, 40, 50]);
  assert.equal(frozen.grad, null);
});

test("bad input is named: replica count, batch smaller than the replica count", async () => {
  await assert.rejects(DataParallel.create({ spec: SPEC, seed: 1, replicas: 0, optimizer: OPT }), /replicas must be a positive integer, got 0/);
  const dp = await DataParallel.create({ spec: SPEC, seed: 1, replicas: 2, optimizer: OPT });
  try {
    await assert.rejects(dp.step(Tensor.zeros([1, 20]), new Int32Array(1)), /batch of 1 examples over 2 replicas/);
  } finally {
    await dp.close();
  }
});
