// `pipewright train --schedule async` end to end: the asynchronous flags resolve into the pipeline
// configuration (or fail naming the bad flag), and a short asynchronous run with a synchronous
// warm-up epoch gives identical numbers on the inline and threads executors (the threads workers
// rebuild the policies from JSON, and the warm-up's optimizer state carries into the async phase).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint, saveCheckpoint, type Json } from "../src/checkpoint/index.js";
import { givenFlags, parseFlags, UsageError } from "../src/cli/args.js";
import { resolvePipelineConfig, trainCommand } from "../src/cli/train.js";
import { trainPipeline } from "../src/train/pipeline.js";
import { asyncWindows } from "../src/train/pipeline-plan.js";
import { CorrectionPolicy, parseAsyncConfig, StashPolicy, type AsyncFlagValues } from "../src/pipeline/weights/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import type { PipelineTrainOptions } from "../src/train/options.js";

const pipe = (argv: string[]) => resolvePipelineConfig(parseFlags(trainCommand, argv), givenFlags(argv));

test("train flags: --schedule async with the asynchronous methods' flag names", () => {
  const p = pipe(["--schedule", "async", "--stages", "4", "--method", "pipemare", "--pipemare-lr", "off", "--warmup-epochs", "2"]);
  assert.ok(p);
  assert.equal(p.schedule, "async");
  assert.equal(p.microbatches, 1);
  assert.equal(p.async?.method, "pipemare");
  assert.equal(p.async?.pipemareLr, false);
  assert.equal(p.async?.pipemareCorrection, true);
  assert.equal(p.async?.warmupEpochs, 2);
  const pb = pipe(["--schedule", "async", "--stages", "8", "--method", "pb", "--spike-compensation", "off", "--weight-prediction", "on", "--workers", "2"]);
  assert.equal(pb?.async?.spikeCompensation, false);
  assert.equal(pb?.async?.weightPrediction, true);
  assert.equal(pb?.workers, 2);
  assert.throws(() => pipe(["--schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--method", "stash"]), (e: Error) => e instanceof UsageError && /--method/.test(e.message) && /async/.test(e.message));
  assert.throws(() => pipe(["--method", "stash"]), (e: Error) => e instanceof UsageError && /--schedule/.test(e.message));
  assert.throws(() => pipe(["--schedule", "async", "--stages", "2", "--method", "stash", "--pipemare-lr", "on"]), (e: Error) => e instanceof UsageError && /pipemare-lr/.test(e.message));
});

test("asynchronous epochs are cut into equal windows of at most the limit", () => {
  assert.deepEqual(asyncWindows(1875), { window: 1875, count: 1, dropped: 0 });
  assert.deepEqual(asyncWindows(60000), { window: 2000, count: 30, dropped: 0 });
  assert.deepEqual(asyncWindows(4001), { window: 1333, count: 3, dropped: 2 });
  assert.throws(() => asyncWindows(0), /at least one/);
});

test("trainPipeline --schedule async (PipeMare, 1 synchronous warm-up epoch): threads equals inline", async () => {
  const base = (executor: "inline" | "threads"): PipelineTrainOptions => ({
    model: "mlp", spec: { name: "mlp", input: 784, hidden: [16, 16, 16], classes: 10 }, epochs: 2, batch: 8,
    optimizer: { name: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 0 }, scheduleLr: "cosine", warmup: 0, seed: 1, data: "slice", limit: 96,
    logEvery: 1, quiet: true,
    pipeline: { schedule: "async", stages: 4, microbatches: 2, chunks: 1, partition: "uniform", executor, recompute: "never",
      async: parseAsyncConfig({ method: "pipemare", "warmup-epochs": 1 }) },
  });
  const a = await trainPipeline(base("inline"));
  const b = await trainPipeline(base("threads"));
  assert.equal(a.summary.steps, 24);
  assert.deepEqual(b.records.map((r) => r.loss), a.records.map((r) => r.loss));
  assert.equal(b.summary.test_loss, a.summary.test_loss);
  // The asynchronous epoch really differs from synchronous training of the same run.
  const sync = await trainPipeline({ ...base("inline"), pipeline: { ...base("inline").pipeline, schedule: "1f1b", async: undefined } });
  assert.deepEqual(sync.records.slice(0, 12).map((r) => r.loss), a.records.slice(0, 12).map((r) => r.loss), "the warm-up epoch is synchronous 1F1B");
  assert.notDeepEqual(sync.records.slice(13).map((r) => r.loss), a.records.slice(13).map((r) => r.loss));
});

// Resume of an asynchronous run: stopped after epoch 1 with --save and resumed, it continues with
// exactly the losses of the uninterrupted run. Each window of no-flush lists drains, so the state at
// a checkpoint is the weights, the optimizer state (Spike Compensation's momentum) and what the
// AsyncRuntime carries between windows: T1's step counter k and the policy buffers (T2's u, LWP's
// w_prev). The LR schedule is constant (a run with --epochs 1 plans the same schedule); T1's factor
// still changes every step. A checkpoint with the async state stripped (the old format) still loads
// and resumes, but differs where that state matters: the oracle can fail.
const tmp = mkdtempSync(join(tmpdir(), "pipewright-async-resume-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const resumeBase = (flags: AsyncFlagValues, executor: "inline" | "threads" = "inline"): PipelineTrainOptions => ({
  model: "mlp", spec: { name: "mlp", input: 784, hidden: [16, 16, 16], classes: 10 }, epochs: 3, batch: 8,
  optimizer: { name: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 1e-4 }, scheduleLr: "none", warmup: 0, seed: 3, data: "slice", limit: 96,
  logEvery: 1, quiet: true,
  pipeline: { schedule: "async", stages: 4, microbatches: 2, chunks: 1, partition: "uniform", executor, recompute: "never",
    async: parseAsyncConfig(flags) },
});
const stepLosses = (r: { records: { type: string; loss: number | null }[] }): (number | null)[] => r.records.filter((x) => x.type === "step").map((x) => x.loss);

/** The same checkpoint as an older build wrote it: no extra.async metadata, no async tensors. */
function withoutAsyncState(from: string, to: string): void {
  const ck = loadCheckpoint(from);
  assert.ok(ck.extraTensors.size > 0 || (ck.extra as { async?: unknown }).async !== undefined, "the checkpoint holds async state");
  const { async: _dropped, ...extra } = ck.extra as { [k: string]: Json };
  saveCheckpoint(to, { model: ck.model, optimizer: ck.optimizer, step: ck.step, epoch: ck.epoch, modelSpec: ck.modelSpec, extra });
}

/** Full 3-epoch run vs 1 epoch + save + resume to 3 (saved and resumed on the given executors). */
async function checkResume(name: string, flags: AsyncFlagValues, o: { save?: "inline" | "threads"; resume?: "inline" | "threads"; stateMatters: boolean }): Promise<void> {
  const cfg = resumeBase(flags);
  const full = await trainPipeline(cfg);
  const ckpt = join(tmp, `${name}.safetensors`);
  const first = await trainPipeline({ ...resumeBase(flags, o.save), epochs: 1, save: ckpt });
  assert.deepEqual(stepLosses(first), stepLosses(full).slice(0, 12), `${name}: epoch 1`);
  const resumed = await trainPipeline({ ...resumeBase(flags, o.resume), resume: ckpt });
  assert.deepEqual(resumed.summary.resumed_from, { path: ckpt, epoch: 1, step: 12 });
  assert.equal(stepLosses(resumed).length, 24);
  assert.deepEqual(stepLosses(resumed), stepLosses(full).slice(12), `${name}: every step after the resume equals the uninterrupted run`);
  assert.equal(resumed.summary.test_loss, full.summary.test_loss);
  const old = join(tmp, `${name}-old.safetensors`);
  withoutAsyncState(ckpt, old);
  const fromOld = await trainPipeline({ ...cfg, resume: old });
  if (o.stateMatters) assert.notDeepEqual(stepLosses(fromOld), stepLosses(full).slice(12), `${name}: without its async state the resume differs`);
  else assert.deepEqual(stepLosses(fromOld), stepLosses(full).slice(12), `${name}: keeps no state beyond the optimizer's`);
}

test("async resume is exact: PipeMare T1 + T2 (step counter k and u = w - tau*delta in the checkpoint)", async () => {
  await checkResume("pipemare", { method: "pipemare" }, { stateMatters: true });
});

test("async resume is exact: PipeMare T1 alone (the step counter k alone matters)", async () => {
  await checkResume("pipemare-t1", { method: "pipemare", "pipemare-correction": "off" }, { stateMatters: true });
});

test("async resume is exact: PB with Spike Compensation + LWP, velocity form (momentum is optimizer state) and difference form (w_prev)", async () => {
  await checkResume("pb", { method: "pb" }, { stateMatters: false });
  await checkResume("pb-diff", { method: "pb", "weight-prediction-mode": "difference" }, { stateMatters: true });
});

test("async resume is exact: stash (drained windows leave nothing in flight)", async () => {
  await checkResume("stash", { method: "stash" }, { stateMatters: false });
});

test("async resume on the threads executor: the workers report and rebuild the async state (PipeMare)", async () => {
  await checkResume("pipemare-threads", { method: "pipemare" }, { save: "threads", resume: "threads", stateMatters: true });
});

test("async resume after a synchronous warm-up epoch: the warm-up checkpoint has no async state, a later one does", async () => {
  const flags: AsyncFlagValues = { method: "pipemare", "warmup-epochs": 1 };
  const full = await trainPipeline(resumeBase(flags));
  for (const at of [1, 2]) {
    const ckpt = join(tmp, `warmup-${at}.safetensors`);
    await trainPipeline({ ...resumeBase(flags), epochs: at, save: ckpt });
    assert.equal((loadCheckpoint(ckpt).extra as { async?: unknown }).async !== undefined, at === 2);
    const resumed = await trainPipeline({ ...resumeBase(flags), resume: ckpt });
    assert.deepEqual(stepLosses(resumed), stepLosses(full).slice(12 * at), `resumed after epoch ${at}`);
  }
});

test("async state: policies refuse to save mid-flight, loads are checked, checkpoints keep extra tensors apart", () => {
  const w = [new Float32Array([1, 2, 3])];
  const stash = new StashPolicy({ params: w });
  stash.forwardWeights(0);
  assert.throws(() => stash.saveState(), /micro-batch\(es\) 0 in flight/);
  stash.backwardWeights(0);
  assert.deepEqual(stash.saveState(), {});
  const corr = new CorrectionPolicy({ params: w }, { tau: 2 });
  assert.throws(() => corr.loadState({ pipemare_u: [new Float32Array(2)] }), /has 2 elements, the parameter 3/);
  assert.throws(() => corr.loadState({ lwp_prev: [new Float32Array(3)] }), /keeps pipemare_u/);
  corr.loadState({ pipemare_u: [new Float32Array([0, 0, 0])] });
  const v = [new Float32Array(3)];
  corr.velocity(v);
  assert.deepEqual([...v[0]], [0.5, 1, 1.5], "delta = (w - u) / tau after the load");
  const path = join(tmp, "extra.safetensors");
  saveCheckpoint(path, { model: new Map([["a", new Tensor(new Float32Array([1]), [1])]]), step: 1, epoch: 1,
    extraTensors: new Map([["async.pipemare_u.a", new Tensor(new Float32Array([7]), [1])]]) });
  const ck = loadCheckpoint(path);
  assert.deepEqual([...ck.model.keys()], ["a"]);
  assert.deepEqual([...ck.extraTensors.get("async.pipemare_u.a")!.data], [7]);
  assert.throws(() => saveCheckpoint(path, { model: new Map([["extra.x", new Tensor(new Float32Array([1]), [1])]]), step: 0, epoch: 0 }), /reserved/);
});

test("async resume with another --stages than the checkpoint fails naming it; a synchronous resume ignores the async state", async () => {
  const ckpt = join(tmp, "stages.safetensors");
  await trainPipeline({ ...resumeBase({ method: "pipemare" }), epochs: 1, save: ckpt });
  const two = resumeBase({ method: "pipemare" });
  await assert.rejects(trainPipeline({ ...two, resume: ckpt, pipeline: { ...two.pipeline, stages: 2 } }), /stage 2 does not exist in this run of 2 stages; resume with the same --stages/);
  // A synchronous run ignores the async state (as the single-device loop does).
  const sync = await trainPipeline({ ...two, epochs: 2, resume: ckpt, pipeline: { ...two.pipeline, schedule: "1f1b", stages: 2, async: undefined } });
  assert.equal(sync.summary.steps, 24);
});
