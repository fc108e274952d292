// Sized models from the CLI: the sizing flags and --model-config resolve into
// the spec they describe (checked against the model actually built), bad values and fields exit 2
// naming the field and what is allowed, and a sized model's checkpoint resumes (on one device and
// as a pipeline) and evaluates as the same model.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseFlags, givenFlags, UsageError } from "../src/cli/args.js";
import { trainCommand, resolveTrainConfig } from "../src/cli/train.js";
import { benchEngineCommand } from "../src/cli/bench.js";
import { modelSpecFromFlags } from "../src/cli/model-flags.js";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { createModel, DEFAULTS, type ModelSpec } from "../src/nn/models/index.js";
import { buildTask } from "../src/train/task.js";
import { roundMetric } from "../src/train/metrics.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "pipewright-size-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const sized = (argv: string[]) => modelSpecFromFlags(undefined, parseFlags(trainCommand, argv), givenFlags(argv));
const config = (name: string, body: unknown): string => {
  const path = join(tmp, name);
  writeFileSync(path, typeof body === "string" ? body : JSON.stringify(body));
  return path;
};

test("sizing flags set the spec fields they name, per model; no flag: the standard size", () => {
  const modelOf = (argv: string[]) => modelSpecFromFlags(parseFlags(trainCommand, argv).model as "gpt", parseFlags(trainCommand, argv), givenFlags(argv)) as
    (Record<string, unknown> & { name: string }) | undefined;
  assert.deepEqual(modelOf(["--model", "gpt", "--layers", "12", "--width", "768", "--heads", "12", "--context", "256"]),
    { name: "gpt", vocab: 256, dim: 768, heads: 12, depth: 12, context: 256 });
  assert.deepEqual(modelOf(["--model", "mlp", "--layers", "3", "--width", "64"])?.hidden, [64, 64, 64]);
  assert.deepEqual(modelOf(["--model", "mlp", "--width", "64"])?.hidden, [64, 64], "--width alone keeps the default number of layers");
  assert.deepEqual(modelOf(["--model", "mlp", "--hidden", "32,16"])?.hidden, [32, 16]);
  const cnn = modelOf(["--model", "cnn", "--channels", "8,16", "--width", "32"]);
  assert.deepEqual([cnn?.channels, cnn?.hidden], [[8, 16], 32]);
  assert.deepEqual(modelOf(["--model", "vit", "--patch", "4", "--layers", "2", "--width", "32", "--heads", "2"]),
    { ...DEFAULTS.vit, patch: 4, depth: 2, dim: 32, heads: 2 });
  assert.equal(modelOf(["--model", "gpt"]), undefined);
  // The model built from the spec has the layers asked for (blocks are units between embedding and head).
  const gpt = createModel(modelOf(["--model", "gpt", "--layers", "3", "--width", "32", "--heads", "4", "--context", "8"]) as unknown as ModelSpec, 0);
  assert.equal(gpt.units.length, 3 + 3);
  assert.equal(gpt.numParameters(), createModel({ name: "gpt", depth: 3, dim: 32, heads: 4, context: 8 }, 0).numParameters());
});

test("--model-config: a ModelSpec file, flags override its fields, bad files name the field and what is allowed", () => {
  const good = config("vit.json", { name: "vit", depth: 2, dim: 32, heads: 4 });
  assert.deepEqual(sized(["--model-config", good]), { ...DEFAULTS.vit, depth: 2, dim: 32, heads: 4 });
  assert.equal((sized(["--model-config", good, "--layers", "3"]) as { depth: number }).depth, 3);
  const noName = config("noname.json", { depth: 2 });
  assert.equal((modelSpecFromFlags("gpt", parseFlags(trainCommand, ["--model-config", noName]), new Set(["model-config"])) as { depth: number }).depth, 2);
  const bad: [string, RegExp][] = [
    [config("field.json", { name: "gpt", layers: 12 }), /model 'gpt': unknown field 'layers'; valid fields: name, vocab, dim, heads, depth, context/],
    [config("heads.json", { name: "gpt", dim: 100, heads: 3 }), /dim 100 must be divisible by heads 3/],
    [config("neg.json", { name: "vit", depth: -1 }), /depth must be a positive integer, got -1/],
    [config("name.json", { name: "resnet" }), /unknown model "resnet" in field 'name'; valid models: mlp, cnn, vit, gpt/],
    [config("list.json", [1, 2]), /must hold a JSON object/],
    [config("text.json", "{depth: 2"), /not valid JSON/],
    [noName, /the file has no 'name'; give --model/],
    [join(tmp, "missing.json"), /cannot read it \(ENOENT\)/],
  ];
  for (const [path, re] of bad) {
    assert.throws(() => sized(["--model-config", path]), (e: Error) => e instanceof UsageError && e.message.includes(path) && re.test(e.message), path);
  }
  assert.throws(() => modelSpecFromFlags("mlp", parseFlags(trainCommand, ["--model-config", good]), new Set(["model-config"])),
    /describes a vit model but --model is mlp/);
});

test("bad sizing values exit 2 naming the flag and what is allowed", () => {
  const vitConfig = config("vit-train.json", { name: "vit", depth: 1, dim: 8, heads: 2 });
  const cases: [string[], RegExp][] = [
    [["train", "--model", "gpt", "--width", "768", "--heads", "5"], /dim 768 must be divisible by heads 5 \(.*--width sets dim, --heads sets heads\)/],
    [["train", "--model", "gpt", "--patch", "4"], /--patch does not size the gpt model; gpt takes --layers, --width, --heads, --context or --model-config FILE/],
    [["train", "--model", "cnn", "--layers", "3"], /--layers does not size the cnn model; cnn takes --channels, --width/],
    [["train", "--model", "gpt", "--layers", "0"], /--layers 0 is too small; it must be at least 1/],
    [["train", "--model", "mlp", "--hidden", "64,x"], /--hidden '64,x': 'x' is not a positive integer/],
    [["train", "--model", "mlp", "--hidden", "64", "--layers", "2"], /either --hidden N,N,... or --layers\/--width/],
    [["train", "--model", "cnn", "--channels", "8,8,8"], /image 28 must be divisible by 2\^3/],
    [["train", "--model", "vit", "--patch", "5"], /image 28 must be divisible by patch 5/],
    [["train", "--layers", "2"], /--layers sizes a model; give --model/],
    [["train", "--model-config", config("mlp-in.json", { name: "mlp", input: 100 })], /input 100 does not fit Fashion-MNIST .*; input must be 784/],
    [["train", "--model-config", config("gpt-vocab.json", { name: "gpt", vocab: 64 })], /vocab 64 is too small for the byte-level text corpus; it must be at least 256/],
    [["train", "--model", "gpt", "--model-config", vitConfig], /describes a vit model but --model is gpt/],
    [["bench", "engine", "--layers", "2"], /--layers sizes a model; give --model/],
    [["bench", "engine", "--model", "gpt", "--models", "gpt"], /either --models .* or --model with sizing flags/],
    [["bench", "pipeline", "--model", "gpt", "--channels", "8"], /--channels does not size the gpt model/],
  ];
  for (const [args, re] of cases) {
    const r = cli(...args);
    assert.equal(r.code, 2, `${args.join(" ")} exits 2 (stderr: ${r.stderr})`);
    assert.match(r.stderr, re, args.join(" "));
  }
  for (const help of [cli("train", "--help"), cli("bench", "engine", "--help"), cli("bench", "pipeline", "--help")]) {
    for (const f of ["--layers L", "--width D", "--heads H", "--context T", "--hidden N,N,...", "--channels N,N,...", "--patch P", "--model-config FILE"]) {
      assert.ok(help.stdout.includes(f), `--help lists ${f}`);
    }
  }
  assert.ok(Object.hasOwn(benchEngineCommand.flags, "model"));
});

test("bench engine times a sized model and reports its size", () => {
  const r = cli("bench", "engine", "--json", "--model", "gpt", "--layers", "1", "--width", "16", "--heads", "2", "--context", "8", "--batch", "2",
    "--steps", "5", "--warmup", "0");
  assert.equal(r.code, 0, r.stderr);
  const line = JSON.parse(r.stdout.trim()) as { model: string; batch: number; parameters: number; spec: ModelSpec };
  assert.equal(line.model, "gpt");
  assert.equal(line.batch, 2);
  assert.deepEqual(line.spec, { name: "gpt", vocab: 256, dim: 16, heads: 2, depth: 1, context: 8 });
  assert.equal(line.parameters, createModel(line.spec, 0).numParameters());
});

interface Summary { parameters: number; train_loss: number; test_loss: number; steps: number; worker_peak_mb: number[] | null; peak_rss_mb: number }

test("a sized model's checkpoint records its spec; --resume (one device and pipeline) and eval rebuild the same model", () => {
  const size = ["--model", "gpt", "--layers", "2", "--width", "16", "--heads", "2", "--context", "16"];
  const common = ["train", "--steps-per-epoch", "2", "--batch", "4", "--json", "--quiet"];
  const want: ModelSpec = { name: "gpt", vocab: 256, dim: 16, heads: 2, depth: 2, context: 16 };
  const run = (...args: string[]): Summary => {
    const r = cli(...common, ...args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as Summary;
  };
  const params = createModel(want, 0).numParameters();
  // One device: 2 epochs straight against 1 + a resume without sizing flags.
  const straight = run(...size, "--epochs", "2");
  const ck = join(tmp, "sized.safetensors");
  const first = run(...size, "--epochs", "1", "--save", ck);
  assert.equal(first.parameters, params);
  assert.deepEqual(loadCheckpoint(ck).modelSpec, want);
  const resumed = run("--resume", ck, "--epochs", "2");
  assert.equal(resumed.parameters, params);
  assert.equal(resumed.steps, 4);
  assert.equal(resumed.train_loss, straight.train_loss, "the resumed sized model continues exactly");
  assert.equal(resumed.test_loss, straight.test_loss);
  // Sizing flags that match the checkpoint are accepted; others are an error naming both models.
  assert.equal(run("--resume", ck, "--epochs", "2", ...size).train_loss, straight.train_loss);
  const other = cli(...common, "--resume", ck, "--epochs", "2", "--layers", "3");
  assert.equal(other.code, 2);
  assert.match(other.stderr, /the checkpoint holds gpt vocab 256, dim 16, heads 2, depth 2, context 16; the sizing flags describe .*depth 3.*resumes only the model it holds/);
  // eval rebuilds the model from the checkpoint's spec alone; in-process, that model on the run's
  // validation batches gives the run's test loss.
  const ev = cli("eval", "--checkpoint", ck, "--json");
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal((JSON.parse(ev.stdout) as { model: string }).model, "gpt");
  const saved = loadCheckpoint(ck);
  const rebuilt = createModel(saved.modelSpec as unknown as ModelSpec, 0);
  rebuilt.loadStateDict(saved.model);
  const task = buildTask({ spec: rebuilt.spec, batch: 4, seed: 0, stepsPerEpoch: 2 });
  assert.equal(roundMetric(task.evaluate(rebuilt).loss), first.test_loss);
  // As a pipeline on worker threads: the resumed run continues as the saved sized pipeline.
  const pipe = ["--schedule", "gpipe", "--stages", "2", "--microbatches", "2", "--executor", "threads"];
  const pStraight = run(...size, ...pipe, "--epochs", "2");
  const pck = join(tmp, "sized-pipe.safetensors");
  run(...size, ...pipe, "--epochs", "1", "--save", pck);
  const pResumed = run("--resume", pck, "--epochs", "2");
  assert.equal(pResumed.parameters, params);
  assert.equal(pResumed.train_loss, pStraight.train_loss);
  // Per-worker memory: one entry per worker thread, each a positive size; none on one device.
  assert.equal(pStraight.worker_peak_mb?.length, 2);
  assert.ok(pStraight.worker_peak_mb!.every((m) => m > 0));
  assert.equal(straight.worker_peak_mb, null);
  assert.ok(straight.peak_rss_mb > 0);
});

test("resolveTrainConfig puts the sized spec into the config a checkpoint stores", () => {
  const argv = ["--model", "mlp", "--hidden", "32"];
  const cfg = resolveTrainConfig(parseFlags(trainCommand, argv), givenFlags(argv));
  assert.deepEqual(cfg.spec, { name: "mlp", input: 784, hidden: [32], classes: 10 });
  const plain = resolveTrainConfig(parseFlags(trainCommand, ["--model", "mlp"]), givenFlags(["--model", "mlp"]));
  assert.equal(plain.spec, undefined, "no sizing flags: the standard model, as before");
});
