// The compiled CLI as a user runs it: help, version, bad input (exit 2 with the valid values), a
// missing dataset (exit 1 with how to get it), and a tiny real training run on the committed slice
// that writes metrics and a checkpoint, then resumes from it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { parseMetrics } from "../src/train/metrics.js";
import { readSafetensors } from "../src/checkpoint/safetensors.js";
import { benchConfigOf, createModel, type ModelSpec } from "../src/nn/models/index.js";
import { noGrad } from "../src/autograd/engine.js";
// A hang guard, not a speed limit: a loaded 2-core machine has taken over 60 s for these small runs.
const HANG_GUARD_MS = 180_000;

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "pipewright-cli-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  return cliEnv({}, ...args);
}

function cliEnv(env: Record<string, string>, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: HANG_GUARD_MS, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("--help lists the commands; <command> --help lists its flags", () => {
  const top = cli("--help");
  assert.equal(top.code, 0);
  for (const c of ["train", "bench", "sim"]) assert.match(top.stdout, new RegExp(`^  ${c} `, "m"));
  const train = cli("train", "--help");
  assert.equal(train.code, 0);
  for (const f of ["--model mlp|cnn|vit|gpt", "--epochs", "--batch", "--lr", "--optimizer sgd|adamw", "--seed", "--save", "--resume",
    "--metrics", "--schedule", "--stages", "--microbatches", "--chunks", "--partition", "--balance", "--executor", "--recompute"]) {
    assert.ok(train.stdout.includes(f), `train --help mentions ${f}`);
  }
  const bench = cli("bench", "engine", "--help");
  assert.equal(bench.code, 0);
  assert.match(bench.stdout, /--profile/);
  assert.match(cli("--version").stdout, /^pipewright \d+\.\d+\.\d+/);
});

test("an unknown command, model, flag or value exits 2 naming the valid ones", () => {
  const cases: [string[], RegExp][] = [
    [["fly"], /unknown command 'fly'; valid commands: train, bench, sim/],
    [["train", "--model", "resnet"], /--model 'resnet' is not valid; choose one of: mlp, cnn, vit, gpt/],
    [["train", "--model", "mlp", "--optimizer", "rmsprop"], /choose one of: sgd, adamw/],
    [["train", "--model", "mlp", "--schedule-lr", "linear"], /choose one of: none, step, cosine/],
    [["train", "--model", "mlp", "--epochs", "0"], /--epochs 0 is too small; it must be at least 1/],
    [["train", "--model", "mlp", "--lr", "fast"], /--lr 'fast' is not a number/],
    [["train", "--model", "mlp", "--colour"], /unknown flag --colour; valid flags: --model, --epochs/],
    [["train", "--epochs", "2"], /--model is required; choose one of: mlp, cnn, vit, gpt/],
    [["train", "--model", "mlp", "--stages", "2"], /only apply to pipeline training; add --schedule/],
    [["train", "--model", "mlp", "--executor", "gpu", "--schedule", "gpipe"], /choose one of: inline, threads/],
    [["train", "--model", "mlp", "--resume", join(tmp, "nope.safetensors")], /no such checkpoint file/],
    [["bench", "warp"], /unknown benchmark 'warp'; valid: engine, compare, pipeline/],
    [["bench", "engine", "--models", "mlp,resnet"], /--models 'resnet' is not valid; choose from mlp, cnn, gpt/],
    [["bench", "engine", "--steps", "3"], /at least 5/],
    [["bench", "parallel", "--parts", "data,pipes"], /'pipes' is not valid; choose from allreduce, data, tensor/],
    [["eval"], /--checkpoint FILE is required/],
    [["repro", "pipedream"], /unknown experiment 'pipedream'; valid: pipemare, pb, pipetransformer/],
  ];
  for (const [args, re] of cases) {
    const r = cli(...args);
    assert.equal(r.code, 2, `${args.join(" ")} exits 2 (stderr: ${r.stderr})`);
    assert.match(r.stderr, re, args.join(" "));
  }
});

test("a missing dataset says which file and how to install it (exit 1)", () => {
  const r = cli("train", "--model", "mlp", "--data", join(tmp, "no-such-dir"), "--quiet");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such-dir/);
  assert.match(r.stderr, /dataset-fashion-mnist/);
});

test("a tiny real run on the committed slice writes metrics, a checkpoint and a JSON summary, then resumes", () => {
  const metrics = join(tmp, "m.jsonl");
  const ckpt = join(tmp, "c.safetensors");
  const svg = join(tmp, "c.svg");
  const args = ["train", "--model", "mlp", "--data", "slice", "--limit", "120", "--batch", "40", "--epochs", "2",
    "--metrics", metrics, "--save", ckpt, "--svg", svg, "--json", "--quiet"];
  const r = cli(...args);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(summary.model, "mlp");
  assert.equal(summary.epochs, 2);
  assert.equal(summary.steps, 6);
  assert.ok(typeof summary.test_acc === "number" && summary.test_acc >= 0 && summary.test_acc <= 1);
  const recs = parseMetrics(readFileSync(metrics, "utf8"));
  assert.equal(recs.filter((x) => x.type === "step").length, 6);
  assert.equal(recs.filter((x) => x.type === "epoch").length, 2);
  const ck = loadCheckpoint(ckpt);
  assert.equal(ck.epoch, 2);
  assert.equal(ck.step, 6);
  assert.ok(ck.model.has("layers.1.weight"));
  assert.ok(ck.optimizer, "the checkpoint carries the optimizer state");
  assert.ok(existsSync(svg) && readFileSync(svg, "utf8").startsWith("<svg"));

  // Resuming takes the saved settings (model, batch, limit, data) and continues the step count.
  const more = cli("train", "--resume", ckpt, "--epochs", "3", "--metrics", metrics, "--json", "--quiet");
  assert.equal(more.code, 0, more.stderr);
  const s2 = JSON.parse(more.stdout) as { steps: number; epochs: number; resumed_from: { epoch: number } };
  assert.equal(s2.steps, 9);
  assert.equal(s2.epochs, 3);
  assert.equal(s2.resumed_from.epoch, 2);
  const all = parseMetrics(readFileSync(metrics, "utf8"));
  assert.deepEqual(all.filter((x) => x.type === "epoch").map((x) => x.epoch), [1, 2, 3]);

  // `eval` on the saved checkpoint reproduces the run's final test accuracy and exports logits that
  // the same weights, loaded here in-process, give again.
  const io = join(tmp, "io.safetensors");
  const ev = cli("eval", "--checkpoint", ckpt, "--data", "slice", "--limit", "120", "--export-logits", io, "--samples", "5", "--json");
  assert.equal(ev.code, 0, ev.stderr);
  const evOut = JSON.parse(ev.stdout) as { test_acc: number; epoch: number };
  assert.equal(evOut.epoch, 2); // the resumed run was not told to --save
  assert.ok(Math.abs(evOut.test_acc - (summary.test_acc as number)) < 1e-6, `${evOut.test_acc} vs ${String(summary.test_acc)} (rounded)`);
  const { tensors } = readSafetensors(io);
  const input = tensors.get("input")!;
  const logits = tensors.get("logits")!;
  assert.deepEqual([input.shape, logits.shape], [[5, 1, 28, 28], [5, 10]]);
  const model = createModel(loadCheckpoint(ckpt).modelSpec as unknown as ModelSpec, 1);
  model.loadStateDict(loadCheckpoint(ckpt).model);
  model.eval();
  assert.deepEqual(Array.from(noGrad(() => model.forward(input)).data), Array.from(logits.data));
});

test("human output: per-epoch lines on stderr, a summary on stdout", () => {
  const r = cli("train", "--model", "mlp", "--data", "slice", "--limit", "80", "--batch", "40", "--epochs", "1");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /epoch 1\/1: train loss \d+\.\d+, test loss \d+\.\d+, test acc \d+\.\d+%/);
  assert.match(r.stdout, /^test acc +\d+\.\d+%/m);
});

test("the summary's per-thread peaks say which threads they are: every thread, or one per pipeline worker with tensor ranks and replicas", () => {
  const args = ["train", "--model", "gpt", "--layers", "2", "--width", "16", "--heads", "2", "--context", "8", "--limit", "16", "--batch", "8",
    "--steps-per-epoch", "2", "--epochs", "1", "--schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--tp", "2", "--replicas", "2",
    "--executor", "threads", "--quiet"];
  const json = cli(...args, "--json");
  assert.equal(json.code, 0, json.stderr);
  const s = JSON.parse(json.stdout) as { worker_peak_mb: number[]; worker_memory: { worker: number; tensor: number; replica: number }[] };
  // 2 pipeline workers x 2 tensor ranks x 2 replicas: 8 threads, each with its tensor-counted memory.
  assert.deepEqual(s.worker_memory.map((m) => [m.worker, m.tensor, m.replica]),
    [[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]]);
  const text = cli(...args);
  assert.equal(text.code, 0, text.stderr);
  for (const [w, t, r] of [[0, 0, 0], [1, 1, 1], [0, 1, 1]]) {
    assert.match(text.stdout, new RegExp(`^ {2}worker ${w} \\(stage ${w}, tensor rank ${t}, replica ${r}\\): parameters`, "m"));
  }
  const line = /^memory .*$/m.exec(text.stdout)?.[0] ?? "";
  const listed = /\): ([\d, ]+) MB$/.exec(line)?.[1].split(", ") ?? [];
  assert.equal(listed.length, s.worker_peak_mb.length, line);
  // The label matches what is listed: a figure for every thread, or one per pipeline worker, named as such.
  if (s.worker_peak_mb.length === s.worker_memory.length) assert.match(line, /; per worker thread \(its JS heap \+ tensors\): /);
  else {
    assert.equal(s.worker_peak_mb.length, 2, "one figure per pipeline worker");
    assert.match(line, /; per pipeline worker \(the thread of replica 0, tensor rank 0; its JS heap \+ tensors\): /);
  }
});

test("bench engine --json prints one object per model with the contract keys first", () => {
  const r = cli("bench", "engine", "--json", "--models", "mlp", "--steps", "5", "--warmup", "0");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 1);
  const o = JSON.parse(lines[0]) as Record<string, unknown>;
  assert.deepEqual(Object.keys(o).slice(0, 5), ["model", "batch", "step_ms", "samples_per_s", "peak_rss_mb"]);
  assert.equal(o.model, "mlp");
  assert.equal(o.batch, 128);
  assert.ok((o.step_ms as number) > 0);
  assert.ok(Math.abs((o.samples_per_s as number) - 128_000 / (o.step_ms as number)) / (o.samples_per_s as number) < 1e-3);
});

test("bench compare sizes the model like bench engine: without PyTorch our row has the sized spec", () => {
  const r = cliEnv({ PIPEWRIGHT_TORCH_PYTHON: join(tmp, "no-python3") }, "bench", "compare", "--model", "gpt", "--layers", "1",
    "--width", "32", "--heads", "2", "--context", "16", "--batch", "3", "--steps", "5", "--warmup", "0", "--json");
  assert.equal(r.code, 1, r.stderr);
  const o = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
  assert.deepEqual(o.spec, { name: "gpt", vocab: 256, dim: 32, heads: 2, depth: 1, context: 16 });
  assert.equal(o.batch, 3);
  assert.equal(o.parameters, createModel({ name: "gpt", dim: 32, heads: 2, depth: 1, context: 16 }, 0).numParameters());
  assert.equal(o.torch_samples_per_s, null);
  const both = cli("bench", "compare", "--models", "mlp", "--model", "gpt", "--layers", "1");
  assert.equal(both.code, 2);
  assert.match(both.stderr, /give either --models \(the fixed configurations\) or --model with sizing flags, not both/);
  const stray = cli("bench", "compare", "--model", "cnn", "--heads", "2");
  assert.match(stray.stderr, /--heads does not size the cnn model/);
});

test("bench_torch.py --config builds the sized model with our parameter count (every model)", (t) => {
  const py = "/usr/bin/python3";
  if (spawnSync(py, ["-c", "import torch"]).status !== 0) { t.skip("python3-torch is not installed: the PyTorch side cannot run"); return; }
  const script = fileURLToPath(new URL("../../scripts/bench_torch.py", import.meta.url));
  const specs: ModelSpec[] = [
    { name: "gpt", dim: 48, heads: 3, depth: 2, context: 8 }, { name: "vit", dim: 32, heads: 2, depth: 1, patch: 14 },
    { name: "mlp", hidden: [40, 30] }, { name: "cnn", channels: [4, 8], hidden: 16 },
  ];
  for (const spec of specs) {
    const cfg = benchConfigOf(spec, 2);
    const r = spawnSync(py, [script, "--config", JSON.stringify(cfg), "--steps", "5", "--warmup", "0"],
      { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } });
    assert.equal(r.status, 0, r.stderr);
    const o = JSON.parse(r.stdout.trim()) as { model: string; batch: number; parameters: number };
    assert.deepEqual([o.model, o.batch, o.parameters], [spec.name, 2, createModel(spec, 0).numParameters()], spec.name);
  }
  const bad = spawnSync(py, [script, "--config", JSON.stringify({ ...benchConfigOf(specs[0], 2), spec: { name: "gpt", width: 3 } })], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--config: model 'gpt': unknown fields \['width'\]/);
});

test("bench compare without PyTorch says so clearly, shows our numbers and exits 1", () => {
  // An interpreter path that does not exist stands in for a machine without python3-torch.
  const r = cliEnv({ PIPEWRIGHT_TORCH_PYTHON: join(tmp, "no-python3") },
    "bench", "compare", "--models", "mlp", "--steps", "5", "--warmup", "0");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /PyTorch is missing: .*no-python3 does not exist\. Install Debian's python3-torch/);
  assert.match(r.stdout, /^mlp +128 +\d+\.\d +- +-$/m);
});
