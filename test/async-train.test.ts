// `pipewright train --schedule async` end to end: the flags of issue 4 resolve into the pipeline
// configuration (or fail naming the bad flag), and a short asynchronous run with a synchronous
// warm-up epoch gives identical numbers on the inline and threads executors (the threads workers
// rebuild the policies from JSON, and the warm-up's optimizer state carries into the async phase).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseFlags, UsageError } from "../src/cli/args.js";
import { givenFlags, resolvePipelineConfig, trainCommand } from "../src/cli/train.js";
import { trainPipeline, asyncWindows } from "../src/train/pipeline.js";
import { parseAsyncConfig } from "../src/pipeline/weights/index.js";
import type { PipelineTrainOptions } from "../src/train/options.js";

const pipe = (argv: string[]) => resolvePipelineConfig(parseFlags(trainCommand, argv), givenFlags(argv));

test("train flags: --schedule async with the issue's flag names", () => {
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
    model: "mlp", spec: { name: "mlp", input: 784, hidden: [16, 16, 16], classes: 10 }, epochs: 2, batch: 8, lr: 0.05,
    optimizer: "sgd", momentum: 0.9, weightDecay: 0, scheduleLr: "cosine", warmup: 0, seed: 1, data: "slice", limit: 96,
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
