// Checkpoints of elastic (PipeTransformer) runs: a run that crashes in epoch 2 and is resumed from
// its epoch-1 checkpoint must give the per-step losses and final weights of the uninterrupted run,
// bit for bit. The oracle is that uninterrupted run. The settings make each saved piece matter:
// the grad-norm criterion's second check reads the previous interval's norms (policy state), alpha
// 1/2 freezes 3 of 6 layers after epoch 1 (AutoPipe's layout and AutoCache, rebuilt on resume), and
// the cosine schedule reads the saved step count. The metrics file must hold every step once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ModelSpec } from "../src/nn/models/index.js";
import { trainElastic, type ElasticTrainOptions } from "../src/train/elastic.js";
import { parseMetrics } from "../src/train/metrics.js";
import { ProgressBar, type ProgressUpdate } from "../src/train/progress.js";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { createModel } from "../src/nn/models/index.js";
import { buildTask, imageTaskOf, loadImageDatasets } from "../src/train/task.js";
import { createPipeline } from "../src/index.js";
import { createOptimizer } from "../src/optim/index.js";
import { backward } from "../src/autograd/engine.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { applyFreeze } from "../src/pipeline/elastic/units.js";

const SPEC: ModelSpec = { name: "vit", image: 28, patch: 7, dim: 16, depth: 2, heads: 2, classes: 10 };

const options = (o: Partial<ElasticTrainOptions>): ElasticTrainOptions => ({
  spec: SPEC, seed: 3, epochs: 3, batch: 16, optimizer: { name: "sgd", lr: 0.05, momentum: 0.9 }, scheduleLr: "cosine", warmup: 2,
  workers: 2, freeze: { alpha: "1/2", criterion: "grad-norm" }, elastic: true, cache: true, data: "slice", limit: 64, ...o,
});

/** A progress bar that throws partway through epoch `epoch`: a crash after the previous epoch's checkpoint. */
class CrashIn extends ProgressBar {
  constructor(readonly epoch: number) { super({ write: () => true, isTTY: false }); }
  override update(u: ProgressUpdate): void {
    if (u.label.startsWith(`epoch ${this.epoch}/`) && u.done >= 32) throw new Error("simulated crash");
  }
}

type Records = ReturnType<typeof parseMetrics>;
const stepLosses = (rs: Records): [number, number | null][] => rs.filter((r) => r.type === "step").map((r) => [r.step, r.loss]);
const epochLosses = (rs: Records): [number, number | null, number | null][] => rs.filter((r) => r.type === "epoch").map((r) => [r.epoch, r.loss, r.test_loss]);

test("elastic runs resumed after a crash in epoch 2 or 3 match the uninterrupted run bit for bit; --metrics has each step once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-freeze-"));
  const full = await trainElastic(options({ metrics: join(dir, "full.jsonl") }));
  const fullRecords = parseMetrics(readFileSync(join(dir, "full.jsonl"), "utf8"));
  assert.equal(stepLosses(fullRecords).length, 12);
  // alpha 1/2 freezes 3 of 6 layers after epoch 1 (AutoCache on, 1 stage x 2 replicas); at the second
  // check the criterion (previous interval's norms) holds it at 3 where the schedule alone says 5.
  assert.deepEqual(full.epochs.map((e) => [e.frozen, e.stages, e.replicas]), [[0, 2, 1], [3, 1, 2], [3, 1, 2]]);
  // The epoch's evaluation runs through the last layout's stages (cached prefix, 2 replicas): against
  // the single-device evaluation of the final weights, within library-freeze's tolerance for it.
  const single = createModel(SPEC, 0);
  single.loadStateDict(full.state);
  const want = imageTaskOf(loadImageDatasets("slice", 64), 64, 0).evaluate(single);
  assert.ok(Math.abs(full.testLoss - want.loss) <= 1e-6 * Math.max(1, Math.abs(want.loss)), `test loss ${full.testLoss} vs ${want.loss}`);
  assert.equal(full.testAcc, want.acc);

  for (const crashEpoch of [2, 3]) {
    const ck = join(dir, `run${crashEpoch}.safetensors`), m = join(dir, `run${crashEpoch}.jsonl`);
    await assert.rejects(trainElastic(options({ save: ck, metrics: m, progress: new CrashIn(crashEpoch) })), /simulated crash/);
    const crashed = parseMetrics(readFileSync(m, "utf8"));
    assert.ok(crashed.some((r) => r.type === "step" && r.epoch === crashEpoch), "the crashed run wrote step records past its checkpoint");

    // The checkpoint: single-device-shaped (model order), evaluable, with the freeze state taken before the epoch's check.
    const saved = loadCheckpoint(ck);
    assert.deepEqual([saved.epoch, saved.step], [crashEpoch - 1, 4 * (crashEpoch - 1)]);
    const model = createModel(SPEC, 0);
    model.loadStateDict(saved.model);
    assert.deepEqual((saved.optimizer as unknown as { groups: { params: string[] }[] }).groups[0].params, model.namedParameters().map(([n]) => n));
    const extra = saved.extra as { config: { model: string }; elastic: { state: { policy: { checks: number; steps: number } } } };
    assert.equal(extra.config.model, "vit");
    assert.deepEqual([extra.elastic.state.policy.checks, extra.elastic.state.policy.steps], [crashEpoch - 2, 4]);

    const resumed = await trainElastic(options({ resume: ck, save: ck, metrics: m }));
    const joined = parseMetrics(readFileSync(m, "utf8"));
    assert.deepEqual(stepLosses(joined), stepLosses(fullRecords), `crash in epoch ${crashEpoch}: per-step losses (each step once)`);
    assert.deepEqual(epochLosses(joined), epochLosses(fullRecords));
    assert.deepEqual(resumed.epochs.map((e) => [e.frozen, e.stages, e.replicas, e.microbatches]),
      full.epochs.map((e) => [e.frozen, e.stages, e.replicas, e.microbatches]));
    for (const [k, t] of full.state) assert.deepEqual(resumed.state.get(k)!.data, t.data, `crash in epoch ${crashEpoch}: final weights ${k}`);
    assert.deepEqual(resumed.trace.epochs.map((e) => e.frozen), [0, 3, 3]);
  }
});

test("pipewright train --resume on a freeze checkpoint continues as a freeze run without --freeze", () => {
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const ck = join(mkdtempSync(join(tmpdir(), "pw-freeze-cli-")), "ck.safetensors");
  const run = (args: string[]): string => {
    const r = spawnSync(process.execPath, [main, "train", ...args, "--data", "slice", "--limit", "32"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout + r.stderr;
  };
  run(["--model", "vit", "--freeze", "--freeze-alpha", "1/2", "--epochs", "1", "--save", ck, "--quiet"]);
  const out = run(["--resume", ck, "--epochs", "2"]);
  assert.match(out, /transition after epoch 1: frozen \d+\/\d+ layers/);
  assert.match(out, /final layout frozen [1-9]\d* layers/);
});

const GPT: ModelSpec = { name: "gpt", dim: 16, heads: 2, depth: 2, context: 16 };

test("gpt freezes too: the CLI's elastic run equals the library's freezing pipe on the same batches bit for bit, and single-device training with the same freeze within 1e-5", async () => {
  const batch = 8, stepsPerEpoch = 3, seed = 3;
  const optimizer = { name: "sgd", lr: 0.05 } as const;
  const policy = { alpha: "1/2", criterion: "schedule" } as const;
  const r = await trainElastic({ spec: GPT, seed, epochs: 2, batch, optimizer, scheduleLr: "none", warmup: 0, workers: 2, freeze: policy,
    elastic: true, cache: false, stepsPerEpoch });
  const cli = r.records.filter((x) => x.type === "step").map((x) => x.loss);
  const frozen = r.epochs[1].frozen;
  assert.equal(cli.length, 2 * stepsPerEpoch);
  assert.ok(frozen > 0, `the schedule froze ${frozen} layers after epoch 1`);
  assert.ok(Number.isFinite(r.testLoss));

  // The library's freezing pipe, fed the task's batches, takes the same freeze and the same steps.
  const task = buildTask({ spec: GPT, batch, seed, stepsPerEpoch });
  const pipe = await createPipeline({ model: { builtin: GPT, seed }, stages: 2, optimizer, freeze: { policy, batch, samples: batch * stepsPerEpoch } });
  const lib: number[] = [];
  try {
    for (const e of [0, 1]) {
      for (const b of task.batches(e, 0)) lib.push(await pipe.step(b.x, b.y));
      if (e === 0) assert.equal(await pipe.endEpoch(), frozen);
    }
    assert.deepEqual(lib, cli);
    const state = await pipe.stateDict();
    for (const [k, t] of r.state) assert.deepEqual(state.get(k)!.data, t.data, `library vs CLI: ${k}`);
  } finally { await pipe.close(); }

  // Single-device training with the first `frozen` layers frozen after epoch 1: the gradients of the
  // micro-batches sum to the mini-batch's, so losses and weights agree within float32 reordering.
  const model = createModel(GPT, seed);
  const opt = createOptimizer(optimizer, model.namedParameters());
  const single: number[] = [];
  for (const e of [0, 1]) {
    if (e === 1) applyFreeze(model, frozen);
    for (const b of task.batches(e, 0)) {
      opt.zeroGrad();
      const loss = crossEntropyLoss(model.forward(b.x), b.y);
      backward(loss);
      opt.step();
      single.push(loss.item());
    }
  }
  cli.forEach((l, i) => assert.ok(Math.abs(l! - single[i]) <= 1e-5 * Math.max(1, Math.abs(single[i])), `step ${i + 1}: ${l} vs single-device ${single[i]}`));
  for (const [k, t] of model.stateDict()) {
    const got = r.state.get(k)!.data, scale = t.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const diff = t.data.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
    assert.ok(diff <= 1e-5 * Math.max(scale, 1e-12), `${k} differs from single-device by ${diff} (max |w| ${scale})`);
  }
});

test("pipewright train --model gpt --freeze trains without the cache and reports what trainElastic gives for the same settings", async () => {
  const main = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const r = spawnSync(process.execPath, [main, "train", "--model", "gpt", "--freeze", "--freeze-alpha", "1/2", "--freeze-criterion", "schedule",
    "--layers", "2", "--width", "16", "--heads", "2", "--context", "16", "--steps-per-epoch", "3", "--epochs", "2", "--batch", "8", "--json", "--quiet"],
  { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as { model: string; test_loss: number; steps: number; freeze: { cache: boolean }; history: { frozen: number }[] };
  assert.equal(got.model, "gpt");
  assert.equal(got.freeze.cache, false);
  assert.deepEqual(got.history.map((h) => h.frozen), [0, 3]);
  // The oracle: the library-level loop with train's gpt defaults (AdamW 3e-3, weight decay 0.01, cosine, warm-up 20).
  const want = await trainElastic({ spec: { ...GPT, depth: 2 }, seed: 0, epochs: 2, batch: 8, optimizer: { name: "adamw", lr: 3e-3, weightDecay: 0.01 },
    scheduleLr: "cosine", warmup: 20, workers: 2, freeze: { alpha: "1/2", criterion: "schedule" }, elastic: true, cache: false, stepsPerEpoch: 3 });
  assert.equal(got.steps, want.steps);
  assert.equal(got.test_loss, want.testLoss);
});
