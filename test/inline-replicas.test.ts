// Replicas on the inline executor: R copies of the pipeline in one thread, whose REDUCEs sum each
// stage's gradients (and BatchNorm moments) in replica order. Oracles: the threads executor's
// replicas (the same IR on worker threads, summed in shared memory) must give the same bits, and
// single-device training on the whole mini-batches agrees within 1e-5 relative (the gradients are
// summed in another order). The processes executor (MPI) must give inline's bits too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { backward } from "../src/autograd/engine.js";
import { splitBatch } from "../src/data/microbatch.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { createOptimizer, type OptimizerState } from "../src/optim/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import type { Executor } from "../src/pipeline/runtime/executor.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { MPI_ENV, mpiSkipReason, mpirunArgs } from "./mpi-helpers.js";

const SCRIPT = fileURLToPath(new URL("./lib-replicas-script.js", import.meta.url));

const MLP: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16, 16], classes: 5 };
const CNN_BN: ModelSpec = { name: "cnn", image: 8, inChannels: 1, channels: [4, 4], hidden: 8, classes: 3, norm: "batch" } as ModelSpec;
const OPT = { name: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-3 } as const;
const SEED = 11, N = 8, M = 4, STEPS = 3;

function batches(spec: ModelSpec): { x: Tensor; y: Int32Array }[] {
  const rng = new Rng(7);
  const shape = spec.name === "mlp" ? [N, 12] : [N, 1, 8, 8];
  const classes = spec.name === "mlp" ? 5 : 3;
  return Array.from({ length: STEPS + 1 }, () => ({ x: Tensor.randn(shape, rng), y: Int32Array.from({ length: N }, () => rng.int(classes)) }));
}

interface Run { losses: number[]; eval: number[]; state: Map<string, Tensor>; optimizer: OptimizerState }

async function train(ex: Executor, spec: ModelSpec): Promise<Run> {
  try {
    const data = batches(spec);
    const losses: number[] = [];
    for (const b of data.slice(0, STEPS)) {
      const parts = splitBatch(b, M);
      losses.push((await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N })).loss);
    }
    const ev = splitBatch(data[STEPS], M);
    const e = await ex.evaluate({ inputs: ev.map((p) => p.x), labels: ev.map((p) => p.y) }, 1 / N);
    const state = await ex.stateDict();
    return { losses, eval: [e.loss, e.correct, e.count], state, optimizer: await ex.optimizerState([...state.keys()]) };
  } finally {
    await ex.close();
  }
}

function setupOf(spec: ModelSpec, schedule: string): PipelineSetup {
  return { model: spec, seed: SEED, schedule: generateSchedule(schedule, { stages: 2, microbatches: M }),
    balance: uniformBalance(createModel(spec, SEED).units.length, 2), recompute: "never", optimizer: OPT };
}

function assertBits(a: Map<string, Tensor>, b: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()], `${what}: names`);
  for (const [k, t] of a) assert.deepEqual(t.data, b.get(k)!.data, `${what}: ${k}`);
}

function assertSame(inline: Run, threads: Run, what: string): void {
  assert.deepEqual(inline.losses, threads.losses, `${what}: losses`);
  assert.deepEqual(inline.eval, threads.eval, `${what}: evaluation`);
  assertBits(inline.state, threads.state, `${what}: weights`);
  assertBits(inline.optimizer.tensors, threads.optimizer.tensors, `${what}: optimizer state`);
}

for (const schedule of ["1f1b", "gpipe"]) {
  test(`inline with 2 replicas (${schedule}) == threads with 2 replicas bit for bit, and single-device training within 1e-5`, async () => {
    const setup = setupOf(MLP, schedule);
    const inline = await train(await InlineExecutor.create(createModel(MLP, SEED), setup, 2), MLP);
    const threads = await train(await ThreadsExecutor.create(setup, createModel(MLP, SEED).stateDict(), 2), MLP);
    assertSame(inline, threads, schedule);
    const ref = createModel(MLP, SEED);
    const opt = createOptimizer(OPT, ref.namedParameters());
    for (const b of batches(MLP).slice(0, STEPS)) { backward(crossEntropyLoss(ref.forward(b.x), b.y)); opt.step(); opt.zeroGrad(); }
    for (const [k, w] of ref.stateDict()) {
      const g = inline.state.get(k)!.data;
      w.data.forEach((v, i) => assert.ok(Math.abs(g[i] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `${k}[${i}]: ${g[i]} vs ${v}`));
    }
    // The replicas did split the rows: one copy gives other bits.
    const one = await train(new InlineExecutor(createModel(MLP, SEED), setup), MLP);
    assert.ok([...one.state].some(([k, t]) => t.data.some((v, i) => v !== inline.state.get(k)!.data[i])), "2 replicas gave one copy's bits");
  });
}

test("BatchNorm with 2 replicas: every replica commits the whole mini-batch's statistics; inline == threads bit for bit", async () => {
  const setup = setupOf(CNN_BN, "1f1b");
  const model = createModel(CNN_BN, SEED), copy = createModel(CNN_BN, SEED);
  const inline = await train(new InlineExecutor(model, setup, undefined, [copy]), CNN_BN);
  assertBits(copy.stateDict(), model.stateDict(), "replica 1 vs replica 0");
  const threads = await train(await ThreadsExecutor.create(setup, createModel(CNN_BN, SEED).stateDict(), 2), CNN_BN);
  assertSame(inline, threads, "cnn with BatchNorm");
  // After one step the first BatchNorm layer saw the same inputs as one device on the whole batch
  // (the convolution before it is still at its initial weights): its running statistics agree.
  const [b] = batches(CNN_BN);
  const one = createModel(CNN_BN, SEED);
  one.train();
  one.forward(b.x);
  const two = createModel(CNN_BN, SEED);
  const ex = await InlineExecutor.create(two, setup, 2);
  const parts = splitBatch(b, M);
  await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N });
  await ex.close();
  for (const name of ["layers.1.running_mean", "layers.1.running_var"]) {
    const want = one.stateDict().get(name)!.data, got = two.stateDict().get(name)!.data;
    want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `${name}[${i}]: replicas ${got[i]} vs one device ${v}`));
  }
});

test("inline replicas: bad counts and sources are named", async () => {
  await assert.rejects(InlineExecutor.create(createModel(MLP, SEED), setupOf(MLP, "1f1b"), 0), /replicas must be a positive integer, got 0/);
  const { model: _m, seed: _s, ...noSource } = setupOf(MLP, "1f1b");
  await assert.rejects(InlineExecutor.create(createModel(MLP, SEED), noSource, 2),
    /inline executor with 2 replicas: each replica builds its own copy of the model from a module export or a built-in spec/);
  const asyncSetup = { ...setupOf(MLP, "1f1b"), schedule: generateSchedule("async", { stages: 2, microbatches: M, steps: 2 }) };
  await assert.rejects(InlineExecutor.create(createModel(MLP, SEED), asyncSetup, 2), /needs a synchronous schedule/);
});

test("inline replicas: a layer failing in replica 1 ends the step naming the replica, stage and action, as on threads", async () => {
  const setup = { ...setupOf(MLP, "1f1b"), instrumentation: { faults: [{ unit: 5, microbatch: 2, replica: 1, message: "boom in layer 5" }] } };
  const parts = splitBatch(batches(MLP)[0], M);
  const batch = { inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N };
  for (const ex of [await InlineExecutor.create(createModel(MLP, SEED), setup, 2), await ThreadsExecutor.create(setup, createModel(MLP, SEED).stateDict(), 2)]) {
    try {
      await assert.rejects(ex.step(batch), (e: Error) => {
        assert.match(e.message, /^stage 1, action 1F2 \(worker 1\): replica 1: boom in layer 5$/, ex.name);
        return true;
      });
    } finally {
      await ex.close();
    }
  }
});

test("a BatchNorm CNN with 2 replicas: processes (4 MPI ranks) == inline bit for bit (moments summed over MPI)", { skip: mpiSkipReason() }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-inl-rep-"));
  try {
    const run = (executor: string, ranks: number): string => {
      const out = join(dir, `${executor}.json`);
      const args = [SCRIPT, executor, "1f1b", out, "2", "cnn-bn"];
      const r = ranks > 1
        ? spawnSync("mpirun", [...mpirunArgs(ranks, "vader"), process.execPath, ...args], { encoding: "utf8", env: { ...process.env, ...MPI_ENV }, timeout: 120_000 })
        : spawnSync(process.execPath, args, { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return readFileSync(out, "utf8");
    };
    const inline = JSON.parse(run("inline", 1)) as { weights: [string, number[]][] };
    assert.ok(inline.weights.some(([k]) => k.endsWith("running_mean")), "the model has BatchNorm statistics");
    assert.deepEqual(JSON.parse(run("processes", 4)), inline);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
