// The single-device training loop: a run interrupted after epoch k and resumed from its checkpoint
// reproduces the uninterrupted run's per-step losses exactly (sgd and adamw, BatchNorm buffers, the
// gpt text task); metrics records; LR schedules; the CLI's config resolution; report helpers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trainSingleDevice, makeLrSchedule } from "../src/train/loop.js";
import { parseMetrics } from "../src/train/metrics.js";
import type { TrainConfig } from "../src/train/options.js";
import { resolveTrainConfig, resolvePipelineConfig } from "../src/cli/train.js";
import { givenFlags, parseFlags, UsageError } from "../src/cli/args.js";
import { trainCommand } from "../src/cli/train.js";
import { lossCurveSvg } from "../src/report/loss-curve-svg.js";
import { movingAverage, ticks } from "../src/report/svg.js";
import { formatProgress, ProgressBar, formatDuration } from "../src/train/progress.js";
import { profileKernels } from "../src/train/kernel-profile.js";
import { getBackend } from "../src/backend/index.js";
import { backward, linear, relu, sum } from "../src/autograd/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { checkpointConfig } from "../src/train/loop.js";
import { helpText } from "../src/cli/args.js";
import type { PipelineConfig } from "../src/train/options.js";
// A hang guard, not a speed limit: a loaded 2-core machine has taken over 60 s for these small runs.
const HANG_GUARD_MS = 180_000;

const tmp = mkdtempSync(join(tmpdir(), "pipewright-train-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

class Crash extends Error {}

/** Runs cfg to the end, recording every step's loss. */
async function lossesOf(cfg: TrainConfig): Promise<number[]> {
  const losses: number[] = [];
  await trainSingleDevice(cfg, { onStep: (_s, l) => losses.push(l) });
  return losses;
}

/**
 * Runs cfg with --save, crashes at the first step after `k` epochs, resumes from the checkpoint, and
 * returns [losses before the crash, losses after resuming].
 */
async function crashAndResume(cfg: TrainConfig, k: number, stepsPerEpoch: number): Promise<[number[], number[]]> {
  const ckpt = join(tmp, `${cfg.model}-${cfg.optimizer}.safetensors`);
  const before: number[] = [];
  await assert.rejects(trainSingleDevice({ ...cfg, save: ckpt }, {
    onStep: (s, l) => {
      if (s > k * stepsPerEpoch) throw new Crash(`simulated crash at step ${s}`);
      before.push(l);
    },
  }), Crash);
  const after: number[] = [];
  const { summary } = await trainSingleDevice({ ...cfg, resume: ckpt }, { onStep: (_s, l) => after.push(l) });
  assert.deepEqual(summary.resumed_from, { path: ckpt, epoch: k, step: k * stepsPerEpoch });
  return [before, after];
}

const base: TrainConfig = {
  model: "mlp", spec: { name: "mlp", hidden: [16] }, epochs: 3, batch: 40, optimizer: { name: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 1e-4 },
  scheduleLr: "cosine", warmup: 2, seed: 7, data: "slice", limit: 200, logEvery: 1,
};

test("resume after epoch 1 of 3 continues with exactly the uninterrupted losses (mlp, SGD momentum, cosine)", async () => {
  const full = await lossesOf(base);
  assert.equal(full.length, 15); // 200 / 40 = 5 steps per epoch
  const [before, after] = await crashAndResume(base, 1, 5);
  assert.deepEqual(before, full.slice(0, 5));
  assert.deepEqual(after, full.slice(5));
  // The losses must actually move, or equality would prove little.
  assert.ok(new Set(full).size > 10);
});

test("resume is exact for AdamW and a BatchNorm cnn (running statistics in the checkpoint)", async () => {
  const cfg: TrainConfig = {
    ...base, model: "cnn", spec: { name: "cnn", channels: [4], hidden: 8, norm: "batch" }, optimizer: { name: "adamw", lr: 3e-3, weightDecay: 0.01 },
    limit: 60, batch: 20, epochs: 3, scheduleLr: "step",
  };
  const full = await lossesOf(cfg);
  const [before, after] = await crashAndResume(cfg, 2, 3);
  assert.deepEqual(before, full.slice(0, 6));
  assert.deepEqual(after, full.slice(6));
});

test("resume is exact for the gpt text task", async () => {
  const cfg: TrainConfig = {
    ...base, model: "gpt", spec: { name: "gpt", dim: 16, heads: 2, depth: 1, context: 16 }, optimizer: { name: "adamw", lr: 1e-2, weightDecay: 0 },
    batch: 4, epochs: 2, stepsPerEpoch: 3, data: undefined, limit: undefined,
  };
  const full = await lossesOf(cfg);
  assert.equal(full.length, 6);
  const [before, after] = await crashAndResume(cfg, 1, 3);
  assert.deepEqual(before, full.slice(0, 3));
  assert.deepEqual(after, full.slice(3));
});

test("a changed seed changes the losses (the resume comparison can fail)", async () => {
  const a = await lossesOf({ ...base, epochs: 1 });
  const b = await lossesOf({ ...base, epochs: 1, seed: 8 });
  assert.notDeepEqual(a, b);
});

test("metrics file: a step record per logged step and an epoch record per epoch, all with the same keys", async () => {
  const metrics = join(tmp, "m.jsonl");
  const { summary } = await trainSingleDevice({ ...base, epochs: 2, logEvery: 2, metrics });
  const recs = parseMetrics(readFileSync(metrics, "utf8"), metrics);
  const keys = ["type", "epoch", "step", "loss", "test_loss", "test_acc", "samples_per_s", "lr", "elapsed_s"];
  for (const r of recs) assert.deepEqual(Object.keys(r), keys);
  assert.deepEqual(recs.filter((r) => r.type === "step").map((r) => r.step), [2, 4, 6, 8, 10]);
  const epochs = recs.filter((r) => r.type === "epoch");
  assert.deepEqual(epochs.map((r) => [r.epoch, r.step]), [[1, 5], [2, 10]]);
  for (const e of epochs) {
    assert.ok(e.test_acc !== null && e.test_acc >= 0 && e.test_acc <= 1);
    assert.ok(e.test_loss !== null && Number.isFinite(e.test_loss));
  }
  assert.equal(summary.test_acc, epochs[1].test_acc);
  assert.equal(summary.steps, 10);
});

test("LR schedule: linear warm-up, then cosine to zero / thirds of x0.1 / constant", () => {
  const cos = makeLrSchedule({ scheduleLr: "cosine", warmup: 4 }, 24);
  assert.deepEqual([0, 1, 2, 3].map(cos), [0.25, 0.5, 0.75, 1]);
  assert.ok(Math.abs(cos(4 + 10) - 0.5) < 1e-12); // halfway through the 20 cosine steps
  assert.ok(Math.abs(cos(24)) < 1e-12);
  const step = makeLrSchedule({ scheduleLr: "step", warmup: 0 }, 30);
  assert.deepEqual([0, 9, 10, 19, 20, 29].map(step).map((x) => Number(x.toPrecision(6))), [1, 1, 0.1, 0.1, 0.01, 0.01]);
  const none = makeLrSchedule({ scheduleLr: "none", warmup: 0 }, 30);
  assert.equal(none(17), 1);
});

test("config: per-model defaults; a resumed run keeps the saved values of flags not given", () => {
  const parse = (argv: string[]) => {
    const f = parseFlags(trainCommand, argv);
    return { f, given: givenFlags(argv) };
  };
  let { f, given } = parse(["--model", "cnn"]);
  const cnn = resolveTrainConfig(f, given);
  assert.equal(cnn.batch, 64);
  assert.equal(cnn.optimizer.lr, 0.05);
  assert.equal(cnn.optimizer.name, "sgd");
  ({ f, given } = parse(["--model", "mlp", "--optimizer", "adamw"]));
  const adam = resolveTrainConfig(f, given);
  assert.equal(adam.optimizer.name, "adamw");
  assert.ok(adam.optimizer.lr < 0.01, "switching to adamw without --lr takes an adamw-sized lr");
  ({ f, given } = parse(["--epochs", "9", "--lr", "0.5"]));
  const saved: TrainConfig = { ...base, batch: 33 };
  const resumed = resolveTrainConfig(f, given, saved);
  assert.equal(resumed.batch, 33);
  assert.equal(resumed.epochs, 9);
  assert.equal(resumed.optimizer.lr, 0.5);
  assert.deepEqual(resumed.spec, base.spec);
  ({ f, given } = parse([]));
  assert.throws(() => resolveTrainConfig(f, given), (e: Error) => e instanceof UsageError && /--model is required; choose one of: mlp, cnn, vit, gpt/.test(e.message));
});

test("pipeline flags: need --schedule, and are checked for consistency", () => {
  const pipe = (argv: string[]) => resolvePipelineConfig(parseFlags(trainCommand, argv), givenFlags(argv));
  assert.equal(pipe(["--model", "mlp"]), null);
  assert.throws(() => pipe(["--stages", "2"]), /only apply to pipeline training; add --schedule/);
  assert.throws(() => pipe(["--schedule", "gpipe", "--microbatches", "4"]), /needs --stages/);
  assert.throws(() => pipe(["--schedule", "gpipe", "--stages", "2", "--microbatches", "4", "--chunks", "2"]), /needs --schedule interleaved/);
  assert.throws(() => pipe(["--schedule", "gpipe", "--stages", "2", "--microbatches", "4", "--balance", "3,2,1"]), /needs 2/);
  assert.throws(() => pipe(["--schedule", "gpipe", "--stages", "2", "--microbatches", "4", "--balance", "3,x"]), /'x' is not a positive integer/);
  assert.deepEqual(pipe(["--schedule", "1f1b", "--stages", "2", "--microbatches", "4", "--balance", "5,4"]), {
    schedule: "1f1b", stages: 2, microbatches: 4, chunks: 1, partition: "uniform", balance: [5, 4], executor: "threads", recompute: "never", weightGrads: "microbatch",
  });
  assert.equal(pipe(["--schedule", "gpipe", "--stages", "2", "--microbatches", "4", "--weight-grads", "step"])?.weightGrads, "step");
  assert.equal(pipe(["--schedule", "async", "--stages", "2", "--weight-grads", "step"])?.weightGrads, "step");
  assert.throws(() => parseFlags(trainCommand, ["--schedule", "gpipe", "--weight-grads", "layer"]), /'layer' is not valid; choose one of: microbatch, step/);
  assert.throws(() => pipe(["--weight-grads", "step"]), /only apply to pipeline training/);
  assert.throws(() => parseFlags(trainCommand, ["--schedule", "pipedream"]), /choose one of: gpipe, 1f1b, interleaved, zb-h1/);
});

test("loss-curve SVG draws the train loss, test loss and accuracy series", () => {
  const recs = [
    { type: "step" as const, epoch: 1, step: 1, loss: 2.3, test_loss: null, test_acc: null },
    { type: "step" as const, epoch: 1, step: 2, loss: 1.9, test_loss: null, test_acc: null },
    { type: "epoch" as const, epoch: 1, step: 2, loss: 2.1, test_loss: 1.8, test_acc: 0.61 },
    { type: "step" as const, epoch: 2, step: 3, loss: 1.2, test_loss: null, test_acc: null },
    { type: "epoch" as const, epoch: 2, step: 3, loss: 1.2, test_loss: 1.1, test_acc: 0.72 },
  ];
  const svg = lossCurveSvg(recs, "t <1>");
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /t &lt;1&gt;/);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 4); // train loss raw and smoothed, test loss, accuracy
  assert.match(svg, /test accuracy/);
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.deepEqual(ticks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(movingAverage([[1, 1], [2, 2], [3, 6], [4, 3]], 3), [[1, 1.5], [2, 3], [3, 11 / 3], [4, 4.5]]);
});

test("progress: in-place redraws on a TTY, throttled plain lines otherwise", () => {
  const out: string[] = [];
  let now = 0;
  const plain = new ProgressBar({ isTTY: false, write: (s) => { out.push(s); return true; } }, 5000, () => now);
  plain.update({ label: "epoch 1/2", done: 10, total: 100, samplesPerS: 5, loss: 1.5 });
  now = 1000;
  plain.update({ label: "epoch 1/2", done: 20, total: 100, samplesPerS: 5, loss: 1.4 }); // throttled
  now = 6000;
  plain.update({ label: "epoch 1/2", done: 30, total: 100, samplesPerS: 5, loss: 1.3 });
  assert.equal(out.length, 2);
  assert.ok(out.every((l) => l.endsWith("\n") && !l.includes("\r")));
  assert.match(out[1], /epoch 1\/2 +30% +30\/100 +5\.0 samples\/s +loss 1\.3000 +ETA 00:14/);
  const tty: string[] = [];
  const bar = new ProgressBar({ isTTY: true, columns: 120, write: (s) => { tty.push(s); return true; } }, 0, () => 0);
  bar.update({ label: "epoch 1/1", done: 50, total: 100, samplesPerS: 10 });
  bar.done();
  assert.ok(tty[0].startsWith("\r") && tty[0].includes("[") && tty[0].includes("50%"));
  assert.equal(tty[1], "\n");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.match(formatProgress({ label: "x", done: 1, total: 2, samplesPerS: 0 }, 0), /ETA --:--/);
});

test("kernel profiler: counts each kernel call through a wrapper and restores the backend", () => {
  const before = getBackend();
  const rng = new Rng(3);
  const x = Tensor.randn([4, 5], rng);
  const w = Tensor.randn([3, 5], rng, 1, true);
  const prof = profileKernels();
  assert.notEqual(getBackend(), before, "the wrapper is installed");
  const out = sum(relu(linear(x, w)));
  backward(out);
  prof.restore();
  assert.equal(getBackend(), before, "restore() puts the original back");
  const calls = new Map(prof.stats().map((s) => [s.kernel, s.calls]));
  assert.equal(calls.get("matmul"), 2); // forward, and the weight gradient (x needs none)
  assert.equal(calls.get("unary:relu"), 1);
  assert.equal(calls.get("unaryBackward:relu"), 1);
  // The wrapped kernels computed the same gradient as the plain backend does.
  const g = w.grad!.data.slice();
  w.grad = null;
  backward(sum(relu(linear(x, w))));
  assert.deepEqual(Array.from(w.grad!.data), Array.from(g));
});

test("resume with --metrics drops the crashed run's records past the checkpoint: each step once, in step order", async () => {
  const fullFile = join(tmp, "uninterrupted.jsonl");
  await trainSingleDevice({ ...base, metrics: fullFile });
  const metrics = join(tmp, "crashed.jsonl");
  const ckpt = join(tmp, "crashed.safetensors");
  // Crash at step 8: the checkpoint is from epoch 1 (step 5), but steps 6 and 7 are already in the file.
  await assert.rejects(trainSingleDevice({ ...base, save: ckpt, metrics }, {
    onStep: (s) => { if (s === 8) throw new Crash(`simulated crash at step ${s}`); },
  }), Crash);
  const read = (f: string) => parseMetrics(readFileSync(f, "utf8"), f);
  assert.deepEqual(read(metrics).map((r) => r.step), [1, 2, 3, 4, 5, 5, 6, 7]); // the crash left records past step 5
  await trainSingleDevice({ ...base, resume: ckpt, metrics });
  const recs = read(metrics);
  assert.deepEqual(recs.filter((r) => r.type === "step").map((r) => r.step), Array.from({ length: 15 }, (_, i) => i + 1));
  for (let i = 1; i < recs.length; i++) assert.ok(recs[i - 1].step <= recs[i].step, `record ${i + 1} is out of step order`);
  // Oracle: the uninterrupted run's file, timing fields aside (resume is exact, so the values match too).
  const values = (f: string) => read(f).map((r) => [r.type, r.epoch, r.step, r.loss, r.test_loss, r.test_acc, r.lr]);
  assert.deepEqual(values(metrics), values(fullFile));

  // A corrupt metrics file is an error naming the line, and is left as it was.
  const corrupt = '{"type":"step","epoch":1,"step":1}\n{"type":"st\n';
  writeFileSync(metrics, corrupt);
  await assert.rejects(trainSingleDevice({ ...base, resume: ckpt, metrics }), /crashed\.jsonl:2: not a JSON metrics record/);
  assert.equal(readFileSync(metrics, "utf8"), corrupt);
});

// --- Resuming a pipeline checkpoint: the pipeline is saved beside the config and continues unless told otherwise.

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
function train(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, "train", ...args], { encoding: "utf8", timeout: HANG_GUARD_MS });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const stepLosses = (file: string): number[] =>
  parseMetrics(readFileSync(file, "utf8"), file).filter((r) => r.type === "step").map((r) => r.loss as number);

test("a pipeline checkpoint resumed with only --resume continues as that pipeline; flags override it; --schedule none is one device", async () => {
  // A constant LR, so that a 1-epoch run resumed to 2 epochs follows the 2-epoch run's plan exactly.
  const small = ["--model", "mlp", "--data", "slice", "--limit", "80", "--batch", "20", "--schedule-lr", "none", "--seed", "3"];
  const pipe = ["--schedule", "1f1b", "--stages", "2", "--microbatches", "2"];
  const full = join(tmp, "pipe-full.jsonl"), ckpt = join(tmp, "pipe.safetensors");
  assert.equal(train(...small, ...pipe, "--executor", "inline", "--epochs", "2", "--metrics", full, "--quiet").code, 0);
  const fullLosses = stepLosses(full);
  assert.equal(fullLosses.length, 8);
  const saved = train(...small, ...pipe, "--epochs", "1", "--save", ckpt, "--quiet"); // executor threads (the default)
  assert.equal(saved.code, 0, saved.stderr);
  assert.deepEqual((loadCheckpoint(ckpt).extra as { pipeline?: unknown }).pipeline, {
    schedule: "1f1b", stages: 2, microbatches: 2, chunks: 1, partition: "uniform", executor: "threads", recompute: "never", weightGrads: "microbatch",
  });

  const asSaved = join(tmp, "pipe-resumed.jsonl");
  const r = train("--resume", ckpt, "--epochs", "2", "--metrics", asSaved);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^resuming as the saved pipeline \(1f1b, 2 stages, 2 micro-batches, executor threads\)/m);
  assert.match(r.stderr, /^pipeline: 1f1b, 2 stages .*executor threads/m);
  assert.deepEqual(stepLosses(asSaved), fullLosses.slice(4)); // threads equal inline bit for bit

  const inline = join(tmp, "pipe-inline.jsonl");
  const o = train("--resume", ckpt, "--epochs", "2", "--executor", "inline", "--metrics", inline);
  assert.equal(o.code, 0, o.stderr);
  assert.match(o.stderr, /^pipeline: 1f1b, 2 stages x 1 chunk\(s\), 2 micro-batches .*executor inline/m);
  assert.deepEqual(stepLosses(inline), fullLosses.slice(4));

  // --schedule none: one device, which is what the library's single-device resume computes.
  const single = join(tmp, "pipe-single.jsonl");
  const n = train("--resume", ckpt, "--epochs", "2", "--schedule", "none", "--metrics", single);
  assert.equal(n.code, 0, n.stderr);
  assert.doesNotMatch(n.stderr, /^pipeline:|resuming as the saved pipeline/m);
  const oracle = await lossesOf({ ...checkpointConfig(ckpt), epochs: 2, resume: ckpt, save: undefined });
  assert.deepEqual(stepLosses(single), oracle);
  assert.notDeepEqual(oracle, fullLosses.slice(4), "a pipeline's float sums differ from one device's, so the comparisons above can fail");

  for (const [args, re] of [
    [["--schedule", "none", "--stages", "2"], /--schedule none trains on one device; --stages only apply to pipeline training/],
    [["--chunks", "2"], /--chunks 2 needs --schedule interleaved; 1f1b \(the checkpoint's pipeline\)/],
    [["--method", "stash"], /--method only apply to --schedule async, not 1f1b/],
  ] as [string[], RegExp][]) {
    const bad = train("--resume", ckpt, "--epochs", "2", "--quiet", ...args);
    assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
    assert.match(bad.stderr, re);
  }
});

test("pipeline flags on resume: unset ones take the saved pipeline's values, with the usual consistency checks", () => {
  const pipe = (argv: string[], saved?: PipelineConfig) => resolvePipelineConfig(parseFlags(trainCommand, argv), givenFlags(argv), saved);
  const usage = (re: RegExp) => (e: Error) => e instanceof UsageError && re.test(e.message);
  const saved: PipelineConfig = {
    schedule: "interleaved", stages: 2, microbatches: 4, chunks: 2, partition: "uniform", balance: [2, 1, 2, 1],
    executor: "threads", recompute: "always", weightGrads: "step", workers: 1,
  };
  assert.deepEqual(pipe([], saved), saved);
  assert.deepEqual(pipe(["--executor", "inline", "--microbatches", "2"], saved), { ...saved, executor: "inline", microbatches: 2 });
  assert.equal(pipe(["--schedule", "none"], saved), null);
  assert.throws(() => pipe(["--schedule", "none", "--executor", "inline"], saved), usage(/--schedule none .*--executor/));
  // Another schedule keeps the general values; the interleaved chunks do not carry over (nor fit the balance).
  assert.throws(() => pipe(["--schedule", "gpipe"], saved), usage(/--balance 2,1,2,1 \(the checkpoint's\) has 4 entries but --stages 2 needs 2; give --balance or --partition/));
  assert.deepEqual(pipe(["--schedule", "gpipe", "--partition", "parameters"], saved),
    { ...saved, schedule: "gpipe", chunks: 1, partition: "parameters", balance: undefined });
  assert.throws(() => pipe(["--stages", "3"], saved), usage(/--balance .*needs 6/));
  assert.throws(() => pipe(["--warmup-epochs", "1"], saved), usage(/--warmup-epochs only apply to --schedule async, not interleaved/));
  // A single-device checkpoint (nothing saved) becomes a pipeline only with --schedule, as before.
  assert.equal(pipe([]), null);
  assert.throws(() => pipe(["--stages", "2"]), usage(/add --schedule/));

  // Asynchronous: the method's settings carry over; a flag given replaces its group (toggle + constants).
  const pm = pipe(["--schedule", "async", "--stages", "2", "--method", "pipemare", "--pipemare-lr", "off", "--pipemare-decay", "0.5", "--warmup-epochs", "1"]);
  assert.ok(pm?.async);
  assert.deepEqual(pipe([], pm), pm);
  const off = pipe(["--pipemare-correction", "off"], pm);
  assert.deepEqual([off?.async?.pipemareCorrection, off?.async?.policy, off?.async?.pipemareLr, off?.async?.warmupEpochs], [false, "naive", false, 1]);
  assert.equal(pipe(["--pipemare-gamma", "0.2"], pm)?.async?.gamma, 0.2); // no clash with the saved decay
  const stash = pipe(["--method", "stash"], pm);
  assert.equal(stash?.async?.method, "stash");
  assert.equal(stash?.async?.warmupEpochs, 1);
  assert.equal(stash?.async?.pipemareLr, false);
  assert.throws(() => pipe(["--method", "stash", "--pipemare-lr", "on"], pm), usage(/--pipemare-lr applies to --method pipemare only/));
  assert.equal(pipe(["--schedule", "1f1b"], pm)?.async, undefined);

  assert.match(helpText(trainCommand), /--schedule NAME .*none: one device/);
});

test("a task without inputs (an MPI rank past the first stage) reads the labels only: the same batches' labels, [b, 0] inputs", async () => {
  const { buildTask } = await import("../src/train/task.js");
  const o = { spec: { name: "mlp" as const }, batch: 64, seed: 5, data: "slice", limit: 300 };
  const full = buildTask(o), labelsOnly = buildTask({ ...o, inputs: false });
  assert.equal(labelsOnly.stepsPerEpoch, full.stepsPerEpoch);
  const a = [...full.batches(1, 0)], b = [...labelsOnly.batches(1, 0)];
  assert.equal(b.length, a.length);
  a.forEach((x, i) => {
    assert.deepEqual(b[i].y, x.y, `batch ${i} labels`);
    assert.deepEqual(b[i].x.shape, [x.x.shape[0], 0]);
  });
  const ea = full.evalBatches(), eb = labelsOnly.evalBatches();
  assert.deepEqual(eb.labels, ea.labels);
  assert.deepEqual(eb.inputs.map((t) => t.shape), ea.inputs.map((t) => [t.shape[0], 0]));
});
