// Per-worker memory of a pipeline step (StepResult.memory, the train summary's worker_memory),
// counted from tensors. Oracles: the model's parameter shapes (parameters, gradients, AdamW's two
// floats per trainable parameter, Megatron's split of a block's matrices over T ranks), the closed
// form of what a stage of an MLP keeps per micro-batch, and the validator's micro-batch counts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { splitBatch } from "../src/data/microbatch.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import type { Module } from "../src/nn/module.js";
import type { OptimizerConfig } from "../src/optim/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import type { Executor, StepResult } from "../src/pipeline/runtime/executor.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import type { RecomputeMode } from "../src/pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { peakActivations } from "../src/pipeline/schedule/validate.js";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";
import { MAIN } from "./mpi-helpers.js";

const ADAMW: OptimizerConfig = { name: "adamw", lr: 1e-3 };
const MLP: ModelSpec = { name: "mlp", input: 6, hidden: [8, 8], classes: 3 };
const GPT: ModelSpec = { name: "gpt", vocab: 11, dim: 16, heads: 2, depth: 2, context: 8 };
const F32 = 4;

const bytesOf = (units: readonly Module[], trainable = false): number =>
  units.flatMap((u) => u.parameters()).filter((p) => !trainable || p.requiresGrad).reduce((n, p) => n + p.size * F32, 0);

interface Run { spec: ModelSpec; schedule: string; stages: number; microbatches: number; recompute?: RecomputeMode; tp?: number; sp?: boolean }

/** One AdamW step on a fixed mini-batch (8 rows), on threads when tensor-parallel, else inline. */
async function step(r: Run): Promise<StepResult> {
  const model = createModel(r.spec, 1);
  const setup = {
    model: r.spec, seed: 1, schedule: generateSchedule(r.schedule, { stages: r.stages, microbatches: r.microbatches }),
    balance: uniformBalance(model.units.length, r.stages), recompute: r.recompute ?? "never", optimizer: ADAMW,
    ...(r.tp ? { tensorParallel: { size: r.tp, sequenceParallel: r.sp ?? false } } : {}),
  };
  const ex: Executor = r.tp ? await ThreadsExecutor.create(setup, model.stateDict()) : new InlineExecutor(model, setup);
  const rng = new Rng(2);
  const gpt = r.spec.name === "gpt";
  const x = gpt ? Tensor.from(Array.from({ length: 8 * 8 }, () => rng.int(11)), [8, 8]) : Tensor.from(Array.from({ length: 8 * 6 }, () => 2 * rng.uniform() - 1), [8, 6]);
  const y = Int32Array.from({ length: gpt ? 64 : 8 }, () => rng.int(3));
  try {
    const parts = splitBatch({ x, y }, r.microbatches);
    return await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / y.length });
  } finally {
    await ex.close();
  }
}

test("parameter, gradient and optimizer bytes per worker equal the model's shapes (AdamW: two floats per trainable parameter)", async () => {
  const r = await step({ spec: MLP, schedule: "1f1b", stages: 2, microbatches: 4 });
  const units = createModel(MLP, 1).units;
  const [a, b] = uniformBalance(units.length, 2);
  const perStage = [units.slice(0, a), units.slice(a, a + b)];
  assert.equal(r.memory?.length, 2);
  r.memory!.forEach((m, w) => {
    assert.deepEqual([m.worker, m.replica, m.tensor, m.stages], [w, 0, 0, [w]]);
    assert.equal(m.parameterBytes, bytesOf(perStage[w]), `worker ${w} parameters`);
    assert.equal(m.gradientBytes, bytesOf(perStage[w], true), `worker ${w} gradients`);
    assert.equal(m.optimizerBytes, 2 * bytesOf(perStage[w], true), `worker ${w} AdamW state`);
  });
});

// What a stage of the MLP 6-8-8-3 (units Flatten, Linear, ReLU | Linear, ReLU, Linear) keeps per
// micro-batch of b rows without recomputation: stage 0 its input [b,6], the linear's and the ReLU's
// outputs [b,8]; stage 1 its input [b,8], [b,8], [b,8], the logits [b,3], the loss and its scaled copy.
const mlpStage0 = (b: number): number => F32 * b * (6 + 8 + 8);
const mlpStage1 = (b: number): number => F32 * (b * (8 + 8 + 8 + 3) + 2);

test("peak activation bytes: micro-batches held (the validator's counts) x what each keeps; gpipe >= 1F1B on stage 0, 1F1B's stage 0 > its last stage", async () => {
  const M = 4, b = 8 / M;
  const byWorker = (r: StepResult): number[] => r.memory!.map((m) => m.peakActivationBytes);
  const gpipe = await step({ spec: MLP, schedule: "gpipe", stages: 2, microbatches: M });
  const ofb = await step({ spec: MLP, schedule: "1f1b", stages: 2, microbatches: M });
  const counts = (name: string): number[] => peakActivations(generateSchedule(name, { stages: 2, microbatches: M }));
  assert.deepEqual(counts("gpipe"), [4, 4]);
  assert.deepEqual(counts("1f1b"), [2, 1]);
  assert.deepEqual(byWorker(gpipe), counts("gpipe").map((n, s) => n * [mlpStage0, mlpStage1][s](b)));
  assert.deepEqual(byWorker(ofb), counts("1f1b").map((n, s) => n * [mlpStage0, mlpStage1][s](b)));
  assert.ok(byWorker(gpipe)[0] >= byWorker(ofb)[0]);
  assert.ok(byWorker(ofb)[0] > byWorker(ofb)[1]);
});

test("peak activation bytes with recomputation: the stashed inputs plus one micro-batch's recomputed graph during its backward", async () => {
  const M = 4, b = 8 / M;
  const r = await step({ spec: MLP, schedule: "1f1b", stages: 2, microbatches: M, recompute: "always" });
  const input = [F32 * b * 6, F32 * b * 8];
  // 1F1B: stage 0 holds 2 inputs when its first backward recomputes, stage 1 holds 1.
  assert.deepEqual(r.memory!.map((m) => m.peakActivationBytes), [2 * input[0] + mlpStage0(b) - input[0], mlpStage1(b)]);
});

// Megatron's split of a TransformerBlock: the column-parallel linears (qkv, mlp.0) split their
// weight and bias, the row-parallel ones (proj, mlp.2) their weight; LayerNorms and row biases stay whole.
const SPLIT = /\.(attn\.qkv\.(weight|bias)|attn\.proj\.weight|mlp\.0\.(weight|bias)|mlp\.2\.weight)$/;

test("T = 2: each tensor rank holds the blocks' split matrices halved (the rest whole), gradients alike, AdamW state twice that", async () => {
  const r = await step({ spec: GPT, schedule: "1f1b", stages: 2, microbatches: 2, tp: 2 });
  const model = createModel(GPT, 1);
  const [a] = uniformBalance(model.units.length, 2);
  const ranges = [[0, a], [a, model.units.length]];
  const rankBytes = (w: number): number => model.namedParameters().reduce((n, [k, p]) => {
    const u = Number(/^layers\.(\d+)\./.exec(k)![1]);
    if (u < ranges[w][0] || u >= ranges[w][1]) return n;
    return n + (SPLIT.test(k) ? p.size / 2 : p.size) * F32;
  }, 0);
  assert.equal(r.memory?.length, 4);
  for (const m of r.memory!) {
    const want = rankBytes(m.worker);
    assert.equal(m.parameterBytes, want, `worker ${m.worker}, tensor rank ${m.tensor}: parameters`);
    assert.equal(m.gradientBytes, want);
    assert.equal(m.optimizerBytes, 2 * want);
    assert.ok(m.peakActivationBytes > 0);
  }
  // The split happened: a worker with blocks holds less than its dense units.
  assert.ok(r.memory!.some((m) => m.parameterBytes < bytesOf(model.units.slice(ranges[m.worker][0], ranges[m.worker][1]))));
});

test("train --json: worker_memory per worker and tensor rank, the same figures on every run; the text summary lists them", () => {
  const args = ["train", "--model", "gpt", "--layers", "2", "--width", "16", "--heads", "2", "--context", "8", "--limit", "16", "--batch", "8",
    "--steps-per-epoch", "2", "--epochs", "1", "--schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--tp", "2", "--quiet", "--seed", "3"];
  const run = (...extra: string[]): string => {
    const r = spawnSync(process.execPath, [MAIN, ...args, ...extra], { encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  type Entry = { worker: number; tensor: number; replica: number; stages: number[]; parameter_bytes: number; gradient_bytes: number; optimizer_bytes: number; peak_activation_bytes: number };
  const mem = (JSON.parse(run("--json")) as { worker_memory: Entry[] }).worker_memory;
  assert.deepEqual(mem.map((m) => [m.worker, m.tensor, m.replica, m.stages]), [[0, 0, 0, [0]], [0, 1, 0, [0]], [1, 0, 0, [1]], [1, 1, 0, [1]]]);
  for (const m of mem) {
    assert.equal(m.optimizer_bytes, 2 * m.gradient_bytes);
    assert.ok(m.parameter_bytes > 0 && m.peak_activation_bytes > 0);
  }
  // Counted from tensors, not sampled: a second run reports the same bytes.
  assert.deepEqual((JSON.parse(run("--json")) as { worker_memory: Entry[] }).worker_memory, mem);
  assert.match(run(), /^ {2}worker 1 \(stage 1, tensor rank 1\): parameters [\d.]+ MB, gradients [\d.]+ MB, optimizer [\d.]+ MB, peak activations [\d.]+ MB$/m);
});

test("bench parallel --ptdp --json: one line per layout with cpu, samples/s and every worker's memory; bad layouts and stray flags get one line", () => {
  const bench = (...args: string[]): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [MAIN, "bench", "parallel", ...args], { encoding: "utf8", timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const r = bench("--ptdp", "--layouts", "1x1x1,1x2x1,2x2x1", "--layers", "2", "--width", "16", "--heads", "2", "--context", "8", "--steps", "3", "--json");
  assert.equal(r.code, 0, r.stderr);
  type Rec = { bench: string; stages: number; tensor: number; replicas: number; samples_per_s: number; cpu: { cores: number };
    workers: { tensor: number; parameter_bytes: number; optimizer_bytes: number; gradient_bytes: number }[] };
  const recs = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Rec);
  assert.deepEqual(recs.map((x) => [x.bench, x.stages, x.tensor, x.replicas, x.workers.length]), [["ptdp", 1, 1, 1, 1], ["ptdp", 1, 2, 1, 2], ["ptdp", 2, 2, 1, 4]]);
  const dense = createModel({ name: "gpt", vocab: 256, dim: 16, heads: 2, depth: 2, context: 8 }, 1).numParameters() * F32;
  assert.equal(recs[0].workers[0].parameter_bytes, dense);
  for (const x of recs) {
    assert.ok(x.samples_per_s > 0 && x.cpu.cores > 0);
    for (const w of x.workers) assert.equal(w.optimizer_bytes, 2 * w.gradient_bytes);
  }
  // The tensor ranks together hold the dense model plus the replicated part once more.
  const [t0, t1] = recs[1].workers;
  assert.equal(t0.parameter_bytes, t1.parameter_bytes);
  assert.ok(t0.parameter_bytes < dense && 2 * t0.parameter_bytes > dense);
  for (const [args, want] of [
    [["--ptdp", "--layouts", "2x2"], /layout '2x2' must be PxTxD with positive integers/],
    [["--width", "16"], /--width only with --ptdp/],
    [["--ptdp", "--parts", "data"], /--parts and --ptdp exclude each other/],
  ] as const) {
    const b = bench(...args);
    assert.equal(b.code, 2, `${args.join(" ")}: ${b.stderr}`);
    assert.match(b.stderr, want);
  }
});

test("inline stageMemory without an asynchronous method: each stage's weights and AdamW state from the model's shapes", async () => {
  const model = createModel(MLP, 1);
  const units = createModel(MLP, 1).units;
  const balance = uniformBalance(units.length, 2);
  const ex = new InlineExecutor(model, {
    model: MLP, seed: 1, schedule: generateSchedule("1f1b", { stages: 2, microbatches: 2 }), balance, recompute: "never", optimizer: ADAMW,
  });
  try {
    const x = Tensor.from(Array.from({ length: 4 * 6 }, (_, i) => Math.sin(i)), [4, 6]);
    const parts = splitBatch({ x, y: Int32Array.from([0, 1, 2, 0]) }, 2);
    await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / 4 });
    const perStage = [units.slice(0, balance[0]), units.slice(balance[0])];
    assert.deepEqual(ex.stageMemory(), perStage.map((u, stage) => {
      const weights = bytesOf(u), optimizerState = 2 * bytesOf(u, true);
      return { stage, weights, optimizerState, extra: 0, total: weights + optimizerState, versions: 1 };
    }));
  } finally {
    await ex.close();
  }
});
