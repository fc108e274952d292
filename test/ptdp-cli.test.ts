// `train --tp T [--sequence-parallel]`: PTD-P from the CLI. The oracle is the CLI's own single-device
// run (--schedule none) of the same model, data and seed: the final checkpoint's weights must agree
// within 1e-5 (relative; tensor-parallel sums run in another order). Also: the layout in the plan
// lines, --tp saved with the pipeline and resumed at another T, and the bad-input lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { mergePipelineConfig } from "../src/train/resume.js";
import type { PipelineConfig } from "../src/train/options.js";
import { MAIN, MPI_ENV, mpiSkipReason } from "./mpi-helpers.js";

const tmp = mkdtempSync(join(tmpdir(), "pw-ptdp-cli-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: 240_000, env: { ...process.env, ...MPI_ENV } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// A constant LR and SGD: the 1-epoch run resumed to 2 epochs follows the 2-epoch run's plan.
const OPT = ["--optimizer", "sgd", "--lr", "0.1", "--schedule-lr", "none", "--warmup", "0", "--seed", "3", "--quiet"];
const GPT = ["train", "--model", "gpt", "--layers", "2", "--width", "16", "--heads", "2", "--context", "8", "--limit", "16", "--batch", "8", "--steps-per-epoch", "2", ...OPT];
const VIT = ["train", "--model", "vit", "--layers", "4", "--width", "16", "--heads", "2", "--data", "slice", "--limit", "32", "--batch", "16", ...OPT];

function weightsClose(got: string, want: string, what: string): void {
  const g = loadCheckpoint(got).model, w = loadCheckpoint(want).model;
  assert.deepEqual([...g.keys()].sort(), [...w.keys()].sort(), `${what}: single-device names`);
  let differs = false;
  for (const [k, t] of g) {
    const r = w.get(k)!.data;
    assert.deepEqual(t.shape, w.get(k)!.shape, `${what}: ${k} shape`);
    t.data.forEach((v, i) => {
      assert.ok(Math.abs(v - r[i]) <= 1e-5 * Math.max(1, Math.abs(r[i])), `${what}: ${k}[${i}]: ${v} vs ${r[i]}`);
      differs ||= v !== r[i];
    });
  }
  // The run did split the work: its sums ran in another order than the single device's.
  assert.ok(differs, `${what}: bit-identical to one device, so nothing was split`);
}

function trained(file: string, ...args: string[]): string {
  const r = cli(...args, "--save", file);
  assert.equal(r.code, 0, r.stderr);
  return r.stderr;
}

test("train --tp 2 --sequence-parallel (gpt, 2 stages, threads) equals one device; the plan says the layout; --tp is saved with the pipeline", () => {
  const one = join(tmp, "gpt-one.safetensors"), tp = join(tmp, "gpt-tp.safetensors");
  trained(one, ...GPT, "--epochs", "2");
  const log = trained(tp, ...GPT.filter((a) => a !== "--quiet"), "--epochs", "2", "--schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--tp", "2", "--sequence-parallel");
  assert.match(log, /^layout: 2 pipeline worker\(s\) x 2 tensor rank\(s\) x 1 replica\(s\) = 4 rank\(s\); .*sequence parallel on/m);
  weightsClose(tp, one, "gpt (2,2,1) sp");
  const saved = (loadCheckpoint(tp).extra as unknown as { pipeline: PipelineConfig }).pipeline;
  assert.equal(saved.tensorParallel, 2);
  assert.equal(saved.sequenceParallel, true);
});

test("train --tp 2 (vit, interleaved, recompute) equals one device", () => {
  const one = join(tmp, "vit-one.safetensors"), tp = join(tmp, "vit-tp.safetensors");
  trained(one, ...VIT, "--epochs", "1");
  trained(tp, ...VIT, "--epochs", "1", "--schedule", "interleaved", "--chunks", "2", "--stages", "2", "--microbatches", "2", "--recompute", "always", "--tp", "2");
  weightsClose(tp, one, "vit interleaved (2,2,1)");
});

test("a checkpoint saved at --tp 2 resumes at --tp 1 and ends where one device does", () => {
  const one = join(tmp, "gpt-one2.safetensors"), half = join(tmp, "gpt-half.safetensors"), end = join(tmp, "gpt-end.safetensors");
  trained(one, ...GPT, "--epochs", "2");
  trained(half, ...GPT, "--epochs", "1", "--schedule", "gpipe", "--stages", "2", "--microbatches", "2", "--tp", "2", "--sequence-parallel");
  trained(end, "train", "--resume", half, "--epochs", "2", "--tp", "1", "--quiet");
  assert.equal((loadCheckpoint(end).extra as unknown as { pipeline: PipelineConfig }).pipeline.tensorParallel, undefined);
  weightsClose(end, one, "saved at T=2, resumed at T=1");
});

test("resuming keeps the saved --tp and sequence parallelism unless given again", () => {
  const p: PipelineConfig = { schedule: "1f1b", stages: 2, microbatches: 2, chunks: 1, partition: "uniform", executor: "threads", recompute: "never",
    tensorParallel: 2, sequenceParallel: true };
  const keep = mergePipelineConfig({}, new Set(), p);
  assert.equal(keep?.tensorParallel, 2);
  assert.equal(keep?.sequenceParallel, true);
  const t4 = mergePipelineConfig({ tp: 4 }, new Set(["tp"]), p);
  assert.equal(t4?.tensorParallel, 4);
  assert.equal(t4?.sequenceParallel, undefined, "a new --tp starts without sequence parallelism");
  assert.equal(mergePipelineConfig({ tp: 1 }, new Set(["tp"]), p)?.tensorParallel, undefined);
});

test("bad --tp input: one line naming the numbers, exit 2", () => {
  const base = ["--epochs", "1", "--schedule", "1f1b", "--stages", "2", "--microbatches", "2"];
  const cases: [string[], RegExp][] = [
    [[...GPT, ...base, "--tp", "3"], /--tp 3 must divide the attention heads 2 \(--heads\)/],
    [["train", "--model", "mlp", "--data", "slice", ...base, "--tp", "2"], /--tp 2 needs a transformer model \(gpt, vit\); --model mlp has no transformer blocks/],
    [["train", "--model", "cnn", "--data", "slice", ...base, "--tp", "2"], /--tp 2 needs a transformer model \(gpt, vit\); --model cnn/],
    [[...GPT, ...base, "--tp", "2", "--executor", "inline"], /--tp 2 runs 2 ranks per worker: use --executor threads or processes, not inline/],
    [[...GPT, ...base, "--sequence-parallel"], /--sequence-parallel .* needs --tp 2 or more, not --tp 1/],
    [[...GPT, ...base, "--tp", "1", "--sequence-parallel"], /needs --tp 2 or more, not --tp 1/],
    [[...GPT, "--epochs", "1", "--tp", "2"], /--tp only apply to pipeline training; add --schedule/],
    [[...GPT, "--epochs", "1", "--schedule", "async", "--stages", "2", "--tp", "2"], /--tp 2 needs a synchronous schedule \(.*\), not async/],
  ];
  for (const [args, want] of cases) {
    const r = cli(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});

const skip = mpiSkipReason();

test("launch -n 2 train --tp 2 (processes: one worker of two tensor ranks) equals one device", { skip }, () => {
  const one = join(tmp, "gpt-one3.safetensors"), tp = join(tmp, "gpt-mpi.safetensors");
  trained(one, ...GPT, "--epochs", "1");
  const r = cli("launch", "-n", "2", "--", ...GPT, "--epochs", "1", "--schedule", "1f1b", "--stages", "1", "--microbatches", "2", "--tp", "2", "--save", tp);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  weightsClose(tp, one, "processes (1,2,1)");
});

test("launch -n 4 train --tp 2 (processes, 2 workers; worker 1 holds no transformer block) equals threads bit for bit", { skip }, () => {
  const threads = join(tmp, "gpt-threads4.safetensors"), procs = join(tmp, "gpt-mpi4.safetensors");
  const run = [...GPT.filter((a) => a !== "--quiet"), "--epochs", "1", "--schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--tp", "2"];
  trained(threads, ...run);
  const log = trained(procs, "launch", "-n", "4", "--", ...run, "--executor", "processes");
  // The case at hand: a rank's model part whose units include no block (final LayerNorm and head).
  assert.match(log, /^stage 1: layers 3-4$/m);
  const got = loadCheckpoint(procs).model, want = loadCheckpoint(threads).model;
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, t] of got) assert.deepEqual(t.data, want.get(k)!.data, `${k}: processes differ from threads`);
});
