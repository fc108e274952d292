// `pipewright bench engine` (per-step training speed of the three BENCH_CONFIGS models) and
// `pipewright bench compare` (the same against PyTorch via scripts/bench_torch.py).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { command, givenFlags, lazy, runSubcommand, UsageError, type CommandSpec, type FlagValues, type Subcommand } from "./args.js";
import { BACKEND_FLAG } from "./gpu-flags.js";
import { cpuLabel, getBackend, machineCpu, setBackend, type BackendName } from "../backend/index.js";
import { loadNativeAddon } from "../backend/native.js";
import { chooseBuilds, cpuFlags } from "../backend/cpu-features.js";
import { BENCH_CONFIGS, benchConfigOf, MODEL_NAMES, type BenchConfig, type ModelName } from "../nn/models/index.js";
import { benchEngineModel, type EngineOptions, type EngineResult } from "../train/bench-engine.js";
import { MODEL_SIZE_FLAGS, modelSpecFromFlags, type ModelSizeFlag } from "./model-flags.js";

const BENCH_MODELS = BENCH_CONFIGS.map((c) => c.model);
/** Debian's interpreter, where python3-torch installs (not whatever python3 is first on PATH). */
const DEFAULT_TORCH_PYTHON = "/usr/bin/python3";
const torchPython = (): string => process.env.PIPEWRIGHT_TORCH_PYTHON || DEFAULT_TORCH_PYTHON;
const MIN_STEPS = 5;
const TORCH_SCRIPT = fileURLToPath(new URL("../../../scripts/bench_torch.py", import.meta.url));

export const benchEngineCommand = {
  name: "bench engine",
  summary: "Times training steps of the engine on one thread: forward + cross-entropy + backward + SGD " +
    "(momentum 0.9) on random data, for mlp 784-1024-1024-10 (batch 128), the cnn (batch 64) and gpt " +
    "(width 256, 4 blocks, context 128, batch 16). Reports the median step after warm-up; one JSON object " +
    "per model and line with --json: {\"model\", \"batch\", \"step_ms\", \"samples_per_s\", \"peak_rss_mb\", ..., " +
    "\"cpu\": {\"model\", \"isa\", \"cores\"}}.",
  flags: {
    json: { type: "bool", help: "one JSON object per model and line" },
    models: { type: "list", choices: BENCH_MODELS, default: BENCH_MODELS.join(","), help: `models to run, from ${BENCH_MODELS.join(", ")}`, meta: "M,M,..." },
    steps: { type: "int", min: MIN_STEPS, default: 10, help: "timed steps (the median is reported)", meta: "N" },
    warmup: { type: "int", min: 0, default: 3, help: "untimed warm-up steps", meta: "N" },
    backend: BACKEND_FLAG,
    profile: { type: "bool", help: "also time every kernel by kind: where each step's time goes" },
    seed: { type: "int", default: 0, help: "seed for weights and random data", meta: "S" },
    "in-process": { type: "bool", help: "run all models in this process (default: one process per model, so peak_rss_mb is per model)" },
    // A model of the user's size instead of the fixed configurations (the same flags as train).
    model: { type: "string", choices: MODEL_NAMES, help: "time this model (any of the four) at the size the sizing flags give, instead of --models" },
    ...MODEL_SIZE_FLAGS,
    batch: { type: "int", min: 1, meta: "B", help: "batch size of --model (default: the fixed configuration's, vit 64)" },
  },
  examples: ["pipewright bench engine --json", "pipewright bench engine --models cnn --profile",
    "pipewright bench engine --model gpt --layers 12 --width 768 --heads 12 --context 256 --batch 4"],
} as const satisfies CommandSpec;

const benchCompareCommand = {
  name: "bench compare",
  summary: "Runs `bench engine` and the same three models (or one model sized by --model and the sizing flags, as in " +
    "`bench engine`) in PyTorch (scripts/bench_torch.py, Debian's " +
    `${DEFAULT_TORCH_PYTHON} with python3-torch, or $PIPEWRIGHT_TORCH_PYTHON; one thread) and prints samples/s of both and the ratio ours/torch per model.`,
  // The measurement and sizing flags are bench engine's own: both sides run the same measurement of
  // the same sized model (scripts/torch_models.py builds it from the same spec).
  flags: {
    ...(({ json, models, steps, warmup, backend, model, batch }) => ({ json, models, steps, warmup, backend, model, ...MODEL_SIZE_FLAGS, batch }))(benchEngineCommand.flags),
    interleaved: {
      type: "bool",
      help: "alternate our steps with PyTorch's step by step, both processes live, so that other load on the machine hits both alike",
    },
  },
  examples: ["npm run bench:compare", "pipewright bench compare --models cnn --json",
    "pipewright bench compare --model gpt --layers 6 --width 384 --heads 6 --context 128 --batch 8"],
} as const satisfies CommandSpec;

/** The compiled CLI entry (this module's sibling), for per-model child processes. */
const CLI_MAIN = fileURLToPath(new URL("./main.js", import.meta.url));

/**
 * `bench engine` for one model in a fresh process (so its peak RSS is its own): a fixed
 * configuration by name, or a sized one (its spec passed as a --model-config file).
 */
function engineInChild(model: string | BenchConfig, o: EngineOptions & { backend?: string }): EngineResult {
  const dir = typeof model === "string" ? null : mkdtempSync(join(tmpdir(), "pipewright-bench-"));
  const which = typeof model === "string" ? ["--models", model] : ["--model", model.model, "--model-config", join(dir!, "spec.json"), "--batch", String(model.batch)];
  if (typeof model !== "string") writeFileSync(join(dir!, "spec.json"), JSON.stringify(model.spec));
  const args = [CLI_MAIN, "bench", "engine", "--json", "--in-process", ...which,
    "--steps", String(o.steps), "--warmup", String(o.warmup), "--seed", String(o.seed)];
  if (o.profile) args.push("--profile");
  if (o.backend !== undefined) args.push("--backend", o.backend);
  try {
    const r = spawnSync(process.execPath, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    if (r.status !== 0) throw new Error(`bench engine for ${typeof model === "string" ? model : model.model} failed (exit ${String(r.status ?? r.signal)})`);
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as EngineResult;
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

function formatProfile(r: EngineResult): string {
  if (!r.profile) return "";
  const rows = [["kernel", "calls/step", "ms/step", "share"],
    ...r.profile.map((p) => [p.kernel, p.calls_per_step.toFixed(1), p.ms_per_step.toFixed(3), `${(p.share * 100).toFixed(1)}%`])];
  const ph = r.phases_ms;
  const phases = ph ? `\nphases per profiled step: forward + loss ${ph.forward.toFixed(3)} ms, backward ${ph.backward.toFixed(3)} ms, ` +
    `zero-grad + optimizer ${ph.optimizer.toFixed(3)} ms` : "";
  return `\n${r.model}: where a step goes (${r.steps} profiled steps; unprofiled median ${r.step_ms.toFixed(2)} ms)\n${table(rows)}${phases}`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ")).join("\n");
}

/** Batch of a sized model when --batch is not given: the fixed configuration's (vit: the cnn's). */
const SIZED_BATCH: Record<ModelName, number> = { mlp: 128, cnn: 64, vit: 64, gpt: 16 };

/**
 * `--model` with sizing flags (or --model-config): one configuration of that size; null for the
 * fixed configurations of --models.
 */
function sizedConfig(f: Pick<FlagValues<typeof benchEngineCommand.flags>, "model" | "batch" | ModelSizeFlag>, given: Set<string>): BenchConfig | null {
  if (!given.has("model") && !Object.keys(MODEL_SIZE_FLAGS).some((n) => given.has(n))) {
    if (given.has("batch")) throw new UsageError("--batch applies to --model (a sized model); the --models configurations have fixed batches");
    return null;
  }
  if (given.has("models")) throw new UsageError("give either --models (the fixed configurations) or --model with sizing flags, not both");
  // Without sizing flags --model was given (sizing flags without --model or a named config throw here).
  const spec = modelSpecFromFlags(f.model, f, given) ?? { name: f.model! };
  return benchConfigOf(spec, f.batch ?? SIZED_BATCH[spec.name]);
}

const runBenchEngine = command(benchEngineCommand, (f, argv) => {
  const sized = sizedConfig(f, givenFlags(argv));
  const configs = sized ? [sized] : BENCH_CONFIGS.filter((c) => f.models.includes(c.model));
  const opts = { steps: f.steps, warmup: f.warmup, seed: f.seed, profile: f.profile === true, sized: sized !== null };
  // One process per model: peak RSS is then each model's own, not the running maximum.
  const inChild = configs.length > 1 && !f["in-process"];
  if (!inChild && f.backend !== undefined) setBackend(f.backend);
  const results = configs.map((c) => {
    const res = inChild ? engineInChild(c.model, { ...opts, backend: f.backend }) : benchEngineModel(c, opts);
    if (f.json) process.stdout.write(JSON.stringify(res) + "\n"); // its contract keys first, the long profile last
    return res;
  });
  if (!f.json) {
    process.stdout.write(`cpu: ${cpuLabel(results[0].cpu)}\n${table([["model", "batch", "step ms", "samples/s", "peak RSS MB", "backend"],
      ...results.map((r) => [r.model, String(r.batch), r.step_ms.toFixed(2), r.samples_per_s.toFixed(1), r.peak_rss_mb.toFixed(1), r.backend])])}\n`);
    for (const r of results) if (r.profile) process.stdout.write(formatProfile(r) + "\n");
  }
  return 0;
});

type CompareRow = ReturnType<typeof compareRow>;

/**
 * The environment of the torch subprocess: OpenBLAS's own core detection (these overrides are for
 * our process only), and one thread for every threading library torch's BLAS may use, since
 * torch.set_num_threads does not reach a system OpenBLAS. When we emulate an AVX2 CPU
 * ($PIPEWRIGHT_ISA=avx2), torch is held to AVX2 as well, as it would be on such a CPU: its OpenBLAS
 * runs the Haswell kernels, ATen its AVX2 ones, and ONEDNN_MAX_CPU_ISA reaches its oneDNN as is.
 */
export function torchEnv(parent: NodeJS.ProcessEnv = process.env, avx2 = emulatingAvx2()): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...parent, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (avx2) {
    env.OPENBLAS_CORETYPE = "Haswell";
    env.ATEN_CPU_CAPABILITY = "avx2";
  }
  return env;
}

/** Whether our products are chosen for AVX2 (the addon's ISA, from $PIPEWRIGHT_ISA) on a CPU that can run the AVX-512 build. */
function emulatingAvx2(): boolean {
  try {
    const c = chooseBuilds(cpuFlags() ?? new Set());
    return loadNativeAddon().gemmInfo().isa === "avx2" && c.ok && c.builds[0].isa === "avx512";
  } catch {
    return false; // no addon (reference backend): nothing emulated
  }
}

/** Null if the torch interpreter can import torch, else why not (one line, with how to fix it). */
function torchMissing(): string | null {
  const py = torchPython();
  const hint = "Install Debian's python3-torch (`apt-get install -y python3-torch`, or `scripts/setup --with-torch`).";
  if (!existsSync(py)) return `PyTorch is missing: ${py} does not exist. ${hint}`;
  const probe = spawnSync(py, ["-c", "import torch"], { encoding: "utf8", env: torchEnv() });
  if (probe.status !== 0) return `PyTorch is missing: ${py} cannot \`import torch\`. ${hint}`;
  return null;
}

/** Runs scripts/bench_torch.py on the fixed configurations by name, or on one sized configuration. */
function runTorch(models: string[] | BenchConfig, steps: number, warmup: number): EngineResult[] {
  if (!existsSync(TORCH_SCRIPT)) throw new Error(`bench compare: ${TORCH_SCRIPT} is missing`);
  const which = Array.isArray(models) ? ["--models", models.join(",")] : ["--config", JSON.stringify(models)];
  const r = spawnSync(torchPython(), [TORCH_SCRIPT, ...which, "--steps", String(steps), "--warmup", String(warmup)],
    { encoding: "utf8", env: torchEnv(), stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) throw new Error(`bench compare: ${TORCH_SCRIPT} failed (exit ${String(r.status ?? r.signal)})`);
  return r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as EngineResult);
}

/** `--interleaved`: each model stepped here and in PyTorch by turns; rows as the plain comparison's. */
async function interleavedRows(configs: BenchConfig[], steps: number, warmup: number, backend: BackendName | undefined): Promise<CompareRow[]> {
  if (backend !== undefined) setBackend(backend);
  const { interleavedSteps } = await import("./bench-interleaved.js");
  const rows: CompareRow[] = [];
  for (const c of configs) {
    const r = await interleavedSteps(c, { steps, warmup, seed: 0, python: torchPython(), script: TORCH_SCRIPT, env: torchEnv() });
    const side = (ms: number): Pick<EngineResult, "model" | "batch" | "step_ms" | "samples_per_s" | "cpu"> =>
      ({ model: c.model, batch: c.batch, step_ms: Number(ms.toFixed(3)), samples_per_s: Number((c.batch * 1000 / ms).toFixed(1)), cpu: machineCpu() });
    rows.push(compareRow(side(r.oursMs), side(r.torchMs), null));
  }
  return rows;
}

const runBenchCompare = command(benchCompareCommand, async (f, argv) => {
  const sized = sizedConfig(f, givenFlags(argv));
  const configs = sized ? [sized] : BENCH_CONFIGS.filter((c) => f.models.includes(c.model));
  const { steps, warmup } = f;
  const missing = torchMissing();
  if (f.interleaved) {
    if (missing) throw new UsageError(`bench compare --interleaved: ${missing}`);
    printCompare(await interleavedRows(configs, steps, warmup, f.backend), f.json === true,
      `ours: ${getBackend().name} backend; torch in step with it`, steps, warmup);
    return 0;
  }
  if (missing) process.stderr.write(`bench compare: ${missing} Showing our numbers only.\n`);
  const ours = configs.map((c) => engineInChild(sized ?? c.model, { steps, warmup, seed: 0, profile: false, backend: f.backend }));
  const torch = missing ? null : runTorch(sized ?? configs.map((c) => c.model), steps, warmup);
  const rows = ours.map((o) => compareRow(o, torch?.find((x) => x.model === o.model) ?? null, sized));
  printCompare(rows, f.json === true, `ours: ${ours[0]?.backend ?? "?"} backend; torch: ${torch?.[0]?.backend ?? "not run"}`, steps, warmup);
  return torch === null ? 1 : 0;
});

type EngineSide = Pick<EngineResult, "model" | "batch" | "step_ms" | "samples_per_s" | "cpu" | "parameters">;

/** Our result against PyTorch's for the same model (null: not run); `cpu` is the machine as our side saw it. */
function compareRow(o: EngineSide, t: EngineSide | null, sized: BenchConfig | null) {
  // Both sides must have timed the same model: a different size would make the ratio meaningless.
  if (t && t.parameters !== undefined && o.parameters !== undefined && t.parameters !== o.parameters) {
    throw new Error(`bench compare: ${o.model} has ${o.parameters} parameters here but ${t.parameters} in PyTorch (scripts/torch_models.py builds another model)`);
  }
  return {
    model: o.model, batch: o.batch, ours_samples_per_s: o.samples_per_s, torch_samples_per_s: t ? t.samples_per_s : null,
    ratio: t ? Number((o.samples_per_s / t.samples_per_s).toFixed(3)) : null, ours_step_ms: o.step_ms, torch_step_ms: t ? t.step_ms : null, cpu: o.cpu,
    ...(o.parameters !== undefined ? { parameters: o.parameters } : {}), ...(sized ? { spec: sized.spec } : {}),
  };
}

function printCompare(rows: CompareRow[], json: boolean, sides: string, steps: number, warmup: number): void {
  if (json) {
    for (const r of rows) process.stdout.write(JSON.stringify(r) + "\n");
    return;
  }
  const fmt = (x: number | null, d: number): string => (x === null ? "-" : x.toFixed(d));
  process.stdout.write(`cpu: ${cpuLabel(machineCpu())}\n`);
  process.stdout.write(table([["model", "batch", "ours samples/s", "torch samples/s", "ratio ours/torch"],
    ...rows.map((r) => [r.model, String(r.batch), fmt(r.ours_samples_per_s, 1), fmt(r.torch_samples_per_s, 1), fmt(r.ratio, 2)])]) + "\n");
  process.stdout.write(`(${sides}; median of ${steps} steps after ${warmup} warm-up, one thread)\n`);
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  engine: { summary: "time training steps of mlp, cnn and gpt on one thread (one JSON object per line with --json)", run: runBenchEngine },
  compare: { summary: "bench engine against PyTorch: samples/s of both and the ratio per model", run: runBenchCompare },
  pipeline: lazy("pipeline training throughput on worker threads per schedule, against one worker and the ideal",
    async () => (await import("./bench-pipeline.js")).runPipelineBench),
  mpi: lazy("MPI transport (under mpirun -n 2+): p2p latency/bandwidth at 1 KB and 4 MB, a 4 MB all-reduce, a waiting rank's CPU",
    async () => (await import("./bench-mpi.js")).runBenchMpi),
  checkpoint: lazy("checkpoint saves of a processes pipeline (under launch -n N): one file gathered to rank 0 against one part per rank",
    async () => (await import("./bench-checkpoint.js")).runBenchCheckpoint),
  gemm: lazy("GFLOP/s of the native matmul per provider (oneDNN, OpenBLAS), shape and layout, with the rule's choice",
    async () => (await import("./bench-gemm.js")).runBenchGemm),
  parallel: lazy("all-reduce, data-parallel replicas and a tensor-parallel MLP on worker threads, against one worker",
    async () => (await import("./bench-parallel.js")).runBenchParallel),
};

export const runBench = (argv: string[]): Promise<number> => runSubcommand("pipewright bench", "benchmark", SUBCOMMANDS, argv);
