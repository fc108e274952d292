// `pipewright bench pipeline`: throughput of pipeline training on worker threads against one worker
// without a pipeline: an MLP of depth 8 (eight Linear layers) and width 1024 on 784-pixel
// inputs, batch 256, M = 8. Lines (one JSON object each with --json):
//   {"bench": "message"}            one-way latency between two worker threads (empty; 128 KB moved)
//   {"bench": "parallel_capacity"}  how many cores' worth of work two threads get done (shared machine)
//   {"schedule": "none", "microbatches": 1}  one worker, whole mini-batches: the baseline of `speedup`
//   {"schedule": "none", "microbatches": M}  one worker, the same M micro-batches (gradient accumulation)
//   {"schedule": "gpipe", ...}      W workers on the threads executor, against both baselines and the
//                                   simulator's `ideal` from the stages' measured costs (docs/cli.md)
//   {"schedule": "async", ...}      naive asynchronous 1F1B (no flush) in steady state (see ASYNC_MICROBATCHES)
//   {"schedule": "zb-v", ...}       V schedules (zb-v, dualpipev; on request): 2W stages on the W workers
//   {"mode": "synthetic", ...}      the same schedule with stages that sleep for those measured costs:
//                                   the executor's own overlap, independent of free cores
// Timings are the fastest of several rounds (the machine is shared). Kernels run single-threaded per
// worker (the native backend pins oneDNN to one thread per call).
import { MessageChannel, Worker } from "node:worker_threads";
import { command, type CommandSpec, type FlagValues, givenFlags, UsageError } from "./args.js";
import { MODEL_SIZE_FLAGS, modelSpecFromFlags } from "./model-flags.js";
import { emit } from "./output.js";
import { backward, noGrad } from "../autograd/engine.js";
import { benchBatch } from "../train/bench-engine.js";
import { GPU_FLAGS, selectBackend } from "./gpu-flags.js";
import { cpuLabel, getBackend, machineCpu } from "../backend/index.js";
import { crossEntropyLoss } from "../nn/loss.js";
import { benchConfigOf, createModel, type Model } from "../nn/models/index.js";
import { MODEL_NAMES, type ModelSpec } from "../nn/models/spec.js";
import { SGD } from "../optim/index.js";
import { simulate, type CostModel } from "../sim/index.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { round } from "../util/stats.js";
import { balanceByCost } from "../pipeline/partition.js";
import { measureStageCosts, profileUnitTimes, type StageCosts } from "../pipeline/runtime/profile.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import type { SplitBatch } from "../pipeline/runtime/executor.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { TraceWriter, traceFileFor } from "../trace/trace-writer.js";
import { InlineExecutor } from "../pipeline/runtime/inline.js";
import { generateSchedule, isVSchedule, SCHEDULE_NAMES, WEIGHT_GRAD_MODES, type Schedule } from "../pipeline/schedule/index.js";

const SYNC_SCHEDULES = ["gpipe", "1f1b", "interleaved", "zb-h1"];
/** The default schedules: the synchronous ones and async (no flush; its lists span several steps). */
const BENCH_SCHEDULES = [...SYNC_SCHEDULES, "async"];
/** Benchmarkable schedules: the defaults and, on request, the V schedules (two stages per worker). */
const BENCHABLE = [...BENCH_SCHEDULES, "zb-v", "dualpipev"];
/**
 * Micro-batches per timed step of the asynchronous lists. A timed round runs ONE list of
 * ceil(ASYNC_MICROBATCHES * N / M) optimizer steps (N = --steps), the same work as N lists of
 * ASYNC_MICROBATCHES, so the fill and drain are paid once per round: the bench approaches the
 * steady state of training, where an asynchronous pipeline never drains (the simulator's ideal for
 * K steps is ~2K/(K+1) times the stage-balance bound). With --microbatches 1 each step is one whole
 * mini-batch, so `speedup` compares like with like and the ideal is 2 up to the stage imbalance.
 */
const ASYNC_MICROBATCHES = 32;

/** The default model: an MLP of 8 Linear layers (7 hidden layers of width 1024) on 784-pixel inputs. */
const BENCH_MLP = { layers: 7, width: 1024 } as const;

const benchPipelineCommand = {
  name: "bench pipeline",
  summary: "Pipeline throughput on worker threads: by default an MLP of depth 8 and width 1024 on 784-pixel inputs (any model " +
    "with --model and the sizing flags), batch 256, " +
    "M = 8; one worker without a pipeline, then the workers under each schedule. One JSON object per line with --json: " +
    "{\"schedule\", \"workers\", \"microbatches\", \"samples_per_s\", \"speedup\", \"speedup_vs_microbatched\", \"ideal\", \"efficiency\" (speedup / ideal), \"executor_efficiency\", \"weight_grads\", ...}, plus " +
    "message latency lines {\"bench\": \"message\", \"payload_bytes\", \"one_way_us\"}; every line also has " +
    "\"cpu\": {\"model\", \"isa\", \"cores\"}.",
  flags: {
    json: { type: "bool", help: "one JSON object per line" },
    schedules: { type: "list", choices: BENCHABLE, default: BENCH_SCHEDULES.join(","), help: `schedules to run, from ${SCHEDULE_NAMES.join(", ")} (async: naive asynchronous 1F1B in steady state, one list of ${ASYNC_MICROBATCHES}*N micro-batches per timed round so fill and drain are amortised; with --microbatches 1 every step is one whole mini-batch)`, meta: "S,S,..." },
    workers: { type: "int", min: 1, default: 2, help: "pipeline workers (stages)", meta: "W" },
    microbatches: { type: "int", min: 1, default: 8, help: "micro-batches per mini-batch", meta: "M" },
    batch: { type: "int", min: 1, default: 256, help: "mini-batch size", meta: "B" },
    // The model (the same sizing flags as train): default the MLP of 8 Linear layers (7 hidden) of width 1024.
    model: { type: "string", choices: MODEL_NAMES, default: "mlp", help: "model to pipeline, sized by the flags below" },
    ...MODEL_SIZE_FLAGS,
    layers: { ...MODEL_SIZE_FLAGS.layers, help: `${MODEL_SIZE_FLAGS.layers.help}; here mlp default ${BENCH_MLP.layers}` },
    width: { ...MODEL_SIZE_FLAGS.width, help: `${MODEL_SIZE_FLAGS.width.help}; here mlp default ${BENCH_MLP.width}` },
    chunks: { type: "int", min: 2, default: 2, help: "chunks per worker for the interleaved schedule", meta: "V" },
    "weight-grads": { type: "string", choices: WEIGHT_GRAD_MODES, default: "step", help: "every schedule (and the one worker on micro-batches) computes weight gradients once per optimizer step over the whole mini-batch (one product per layer instead of M thin ones), or with each micro-batch's backward" },
    steps: { type: "int", min: 1, default: 3, help: "timed optimizer steps per round", meta: "N" },
    rounds: { type: "int", min: 1, default: 6, help: "timed rounds per run; the fastest counts (the machine is shared)", meta: "R" },
    warmup: { type: "int", min: 0, default: 2, help: "untimed steps per run", meta: "N" },
    seed: { type: "int", default: 0, help: "seed for weights and data", meta: "S" },
    synthetic: { type: "bool", default: true, help: "also run each schedule with stages that sleep for the measured costs (the executor's overlap, apart from the machine's cores); --synthetic=off skips it" },
    ...GPU_FLAGS,
    records: { type: "string", help: "with --executor processes: write every rank's per-action and message records of the timed steps to DIR/<schedule>-<ranks>.json (what the sim rows are computed from)", meta: "DIR" },
    trace: { type: "string", meta: "FILE", help: "write a Chrome trace of each pipeline's timed steps (with several schedules, one file each: FILE-<schedule>.json); read it with `pipewright trace report FILE`" },
    executor: { type: "string", choices: ["threads", "processes"], default: "threads", help: "threads (default), or processes: under `pipewright launch -n W`, one MPI rank per worker next to W threads in the same job (synchronous schedules, the V ones included; async is skipped)" },
  },
  examples: ["pipewright bench pipeline --json", "pipewright bench pipeline --schedules gpipe,1f1b --steps 4", "pipewright launch -n 2 -- bench pipeline --executor processes",
    "pipewright bench pipeline --model gpt --layers 4 --width 256 --heads 4 --context 128 --batch 16 --schedules 1f1b --workers 2"],
} as const satisfies CommandSpec;

/** Median one-way latency (µs) of a message between two worker threads, `bytes` transferred each way. */
async function measureMessageLatency(bytes: number, rounds = 2000): Promise<number> {
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    const { port, role, bytes, rounds } = workerData;
    if (role === "echo") {
      port.on("message", (m) => { if (m === null) { port.close(); return; } port.postMessage(m, m.buffer ? [m.buffer] : []); });
    } else {
      let buf = bytes > 0 ? new Float32Array(bytes / 4) : 0;
      const rtts = [];
      let i = 0, t0 = 0;
      port.on("message", (m) => {
        rtts.push(performance.now() - t0);
        buf = m;
        if (++i === rounds) { port.postMessage(null); port.close(); rtts.sort((a, b) => a - b); parentPort.postMessage(rtts[rtts.length >> 1] / 2 * 1000); return; }
        t0 = performance.now(); port.postMessage(buf, buf.buffer ? [buf.buffer] : []);
      });
      t0 = performance.now(); port.postMessage(buf, buf.buffer ? [buf.buffer] : []);
    }`;
  const ch = new MessageChannel();
  const echo = new Worker(code, { eval: true, workerData: { port: ch.port2, role: "echo", bytes, rounds }, transferList: [ch.port2] });
  const ping = new Worker(code, { eval: true, workerData: { port: ch.port1, role: "ping", bytes, rounds }, transferList: [ch.port1] });
  try {
    return await new Promise<number>((resolve, reject) => { ping.once("message", resolve); ping.once("error", reject); echo.once("error", reject); });
  } finally {
    await Promise.all([ping.terminate(), echo.terminate()]);
  }
}

/**
 * How many cores' worth of work `threads` threads get done at once: each runs the same loop of the
 * pipeline's own kernel (a 32x1024x1024 matmul), alone and then together. A machine whose cores are
 * really parallel gives `threads`; 1 means the threads share one core (no pipeline can speed up).
 */
async function measureParallelCapacity(threads: number, seconds = 0.5): Promise<number> {
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(workerData.backendUrl).then(({ setBackend }) => {
      const be = setBackend(workerData.backend);
      const m = 32, n = 1024;
      const a = new Float32Array(m * n).fill(0.5), b = new Float32Array(n * n).fill(0.25), out = new Float32Array(m * n);
      for (let i = 0; i < 5; i++) be.matmul(a, b, out, 1, m, n, n, false, false, false);
      const t0 = performance.now();
      let reps = 0;
      while (performance.now() - t0 < workerData.seconds * 1000) { be.matmul(a, b, out, 1, m, n, n, false, false, false); reps++; }
      parentPort.postMessage(reps / (performance.now() - t0));
    });`;
  const backendUrl = new URL("../backend/index.js", import.meta.url).href;
  const run = async (k: number): Promise<number> => {
    const ws = Array.from({ length: k }, () => new Worker(code, { eval: true, workerData: { backendUrl, backend: getBackend().name, seconds } }));
    try {
      const rates = await Promise.all(ws.map((w) => new Promise<number>((resolve, reject) => { w.once("message", resolve); w.once("error", reject); })));
      return rates.reduce((x, y) => x + y, 0);
    } finally {
      await Promise.all(ws.map((w) => w.terminate()));
    }
  };
  const one = await run(1);
  return (await run(threads)) / one;
}

export interface Timing { warmup: number; steps: number; rounds: number }

/**
 * A timed configuration: `best` ends as its fastest round's seconds per optimizer step. perCall:
 * optimizer steps one call of `step` runs (an asynchronous list spans several); calls: calls per
 * timed round and per warm-up (default --steps and --warmup); trace: records the call just made.
 */
interface Runner { step: () => unknown; best: number; perCall?: number; calls?: number; trace?: () => void }

/** A pipeline's runner: a step per call, or an asynchronous list in one call that holds a round's work (see ASYNC_MICROBATCHES). */
function pipelineRunner(ex: ThreadsExecutor, schedule: Schedule, batch: SplitBatch): Runner {
  if (schedule.synchronous) return { step: () => ex.step(batch), best: Infinity };
  const batches = new Array<SplitBatch>(schedule.steps).fill(batch);
  return { step: () => ex.run(batches), best: Infinity, perCall: schedule.steps, calls: 1 };
}

/**
 * Warms every runner up, then times them in interleaved rounds, each keeping its fastest, so that a
 * stretch of the shared machine being busy does not hit one of them only.
 */
async function timeRunners(runners: readonly Runner[], t: Timing): Promise<void> {
  for (const r of runners) for (let i = 0; i < Math.min(t.warmup, r.calls ?? t.warmup); i++) await r.step();
  for (let k = 0; k < t.rounds; k++) {
    for (const r of runners) {
      const calls = r.calls ?? t.steps;
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) { await r.step(); r.trace?.(); }
      r.best = Math.min(r.best, (performance.now() - t0) / 1000 / calls / (r.perCall ?? 1));
    }
  }
}

export type BenchPipelineFlags = FlagValues<typeof benchPipelineCommand.flags>;

/** The model the flags describe: the sized --model, or the default MLP when nothing sizes an mlp. */
function benchSpec(f: BenchPipelineFlags, given: Set<string>): ModelSpec {
  const model = f.model;
  const mlpDefaults = model === "mlp" && !given.has("hidden") && !given.has("model-config");
  // The bench's own MLP defaults stand in for flags not given (train's mlp is 2 x 1024).
  const flags = mlpDefaults ? { ...f, layers: f.layers ?? BENCH_MLP.layers, width: f.width ?? BENCH_MLP.width } : f;
  const sizedGiven = mlpDefaults ? new Set([...given, "layers", "width"]) : given;
  return modelSpecFromFlags(model, flags, sizedGiven) ?? { name: model };
}

/** What every schedule's pipeline is built from. */
interface Bench { f: BenchPipelineFlags; spec: ModelSpec; timing: Timing; batch: SplitBatch; latency: number; units: number; unitTimes: number[] }

interface Pipeline { name: string; v: number; schedule: Schedule; balance: number[]; costs: StageCosts; ideal: number; ex: ThreadsExecutor; runner: Runner }

type Out = (line: object, text: string) => void;

export const runPipelineBench = command(benchPipelineCommand, async (f, argv) => {
  const gpus = selectBackend(f);
  if (f.records !== undefined && f.executor !== "processes") throw new UsageError(`--records ${f.records} is only for --executor processes (the per-rank records of its steps)`);
  const spec = benchSpec(f, givenFlags(argv));
  const { workers: W, microbatches: M, batch: B, seed } = f;
  if (B < M) throw new UsageError(`--batch ${B} cannot be split into --microbatches ${M}`);
  const { x, y } = benchBatch(benchConfigOf(spec, B), new Rng(seed));
  const batch = splitMiniBatch(x, y, M, "bench pipeline");
  if (f.executor === "processes") return (await import("./bench-pipeline-processes.js")).runProcessesPipelineBench(f, spec, batch);
  // Every JSON line names the machine; the human output names it once, first.
  const cpu = machineCpu();
  const out: Out = (line, text) => emit(f.json, { ...line, cpu, ...(gpus ? { gpu_map: gpus } : {}) }, text);
  if (!f.json) process.stdout.write(`cpu: ${cpuLabel(cpu)}\n${gpus ? `gpus: ${gpus.rule}, map ${gpus.map.join(",")}\n` : ""}`);
  const probe = createModel(spec, seed);
  const latency = await measureMachine(out, probe, batch, W);
  const b: Bench = { f, spec, timing: { warmup: f.warmup, steps: f.steps, rounds: f.rounds }, batch, latency, units: probe.units.length,
    unitTimes: profileUnitTimes(spec, seed, batch.inputs[0], 9) };
  // Every configuration is prepared first, then timed in interleaved rounds (see timeRunners).
  const baselines = baselineRunners(b, x, y);
  const pipelines: Pipeline[] = [];
  const writers: TraceWriter[] = [];
  try {
    for (const name of f.schedules) {
      const p = await preparePipeline(b, name, out);
      if (!p) continue;
      pipelines.push(p);
      if (f.trace === undefined) continue;
      // --trace: the pipelines record their actions and messages (the timings include that small cost).
      const w = new TraceWriter(traceFileFor(f.trace, name, f.schedules.length > 1));
      writers.push(w);
      p.runner.trace = () => w.add(p.ex);
    }
    await timeRunners([...baselines, ...pipelines.map((p) => p.runner)], b.timing);
  } finally {
    for (const p of pipelines) await p.ex.close();
  }
  for (const w of writers) if (w.steps) { await w.finish(); if (!f.json) process.stdout.write(`trace: ${w.file}\n`); }
  const backend = getBackend().name;
  reportRuns(out, b, baselines.map((r) => r.best), pipelines, backend);
  for (const p of f.synthetic ? pipelines : []) {
    const l = await syntheticRun(b, p, backend);
    out(l, `${p.name.padEnd(12)} ${W} workers, stages sleeping their measured costs: speed-up ${l.speedup} of ideal ${l.ideal} (${(100 * l.efficiency).toFixed(0)}%)`);
  }
  return 0;
});

/** What one message between stages carries: the first unit's output on a micro-batch, in bytes. */
export function activationBytes(model: Model, batch: SplitBatch): number {
  return noGrad(() => model.units[0].forward(batch.inputs[0])).size * 4;
}

/** The message latency lines and the parallel capacity line; resolves to the latency of one activation (µs). */
async function measureMachine(out: Out, probe: Model, batch: SplitBatch, W: number): Promise<number> {
  const bytes = activationBytes(probe, batch);
  const latencyEmpty = await measureMessageLatency(0);
  const latency = await measureMessageLatency(bytes);
  out({ bench: "message", payload_bytes: 0, one_way_us: round(latencyEmpty, 4) }, `message between worker threads: ${latencyEmpty.toFixed(1)} µs one way (empty)`);
  out({ bench: "message", payload_bytes: bytes, transferred: true, one_way_us: round(latency, 4) },
    `message between worker threads: ${latency.toFixed(1)} µs one way (${bytes} bytes, transferred)`);
  const capacity = await measureParallelCapacity(W);
  out({ bench: "parallel_capacity", threads: W, throughput_ratio: round(capacity, 4) },
    `${W} threads running the same kernel get ${capacity.toFixed(2)}x the work of one done (the most any ${W}-worker pipeline can gain here)`);
  return latency;
}

const OPTIMIZER = { name: "sgd", lr: 0.01, momentum: 0.9 } as const;

/** One worker on whole mini-batches, and one worker on the same M micro-batches (gradient accumulation). */
function baselineRunners(b: Bench, x: Tensor, y: Int32Array): Runner[] {
  const { spec, f: { seed } } = b;
  const single = createModel(spec, seed);
  const opt = new SGD(single.namedParameters(), OPTIMIZER);
  const micro = new InlineExecutor(createModel(spec, seed), { model: spec, seed,
    schedule: generateSchedule("gpipe", { stages: 1, microbatches: b.f.microbatches, weightGrads: b.f["weight-grads"] }), balance: [b.units], recompute: "never", optimizer: OPTIMIZER });
  return [
    { step: () => { backward(crossEntropyLoss(single.forward(x), y)); opt.step(); opt.zeroGrad(); }, best: Infinity },
    { step: () => micro.step(b.batch), best: Infinity },
  ];
}

/**
 * Schedule `name` on the W workers: balanced stages from measured per-layer times, as a user's
 * --partition time, then the best simulated neighbour; null (with a line) when skipped.
 */
async function preparePipeline(b: Bench, name: string, out: Out): Promise<Pipeline | null> {
  const { workers: W, microbatches: M, seed } = b.f;
  const isAsync = name === "async";
  const s = benchSchedule(b.f, name, b.units, isAsync ? Math.ceil(ASYNC_MICROBATCHES * b.timing.steps / M) : undefined);
  if (!s) {
    out({ schedule: name, skipped: `M=${M} is not a multiple of ${W} workers` }, `${name}: skipped (M not a multiple of the workers)`);
    return null;
  }
  const { schedule, stages, v } = s;
  const setupFor = (balance: number[]): PipelineSetup => ({ model: b.spec, seed, schedule, balance, recompute: "never", optimizer: OPTIMIZER,
    ...(b.f.trace !== undefined ? { instrumentation: { recordActions: true } } : {}) });
  const { balance, costs } = await bestSimulatedBalance(schedule, balanceByCost(b.unitTimes, stages * v),
    (bal) => measureStageCosts(setupFor(bal), b.batch, isAsync ? 1 : 3), b.latency);
  // The simulator's bound from these stages' measured costs.
  const ideal = simulate(schedule, costModel(costs, b.latency)).speedup;
  const ex = await ThreadsExecutor.create(setupFor(balance), createModel(b.spec, seed).stateDict());
  return { name, v, schedule, balance, costs, ideal, ex, runner: pipelineRunner(ex, schedule, b.batch) };
}

/**
 * Schedule `name` on the --workers (--chunks each for interleaved), checked against the model's
 * units; null where interleaved cannot deal the micro-batches out evenly over the workers.
 */
export function benchSchedule(f: BenchPipelineFlags, name: string, units: number, steps?: number): { schedule: Schedule; stages: number; v: number } | null {
  const { workers: W, microbatches: M } = f, v = name === "interleaved" ? f.chunks : 1;
  // A V schedule holds two stages per worker: 2W stages keep the W workers of the others.
  const stages = isVSchedule(name) ? 2 * W : W;
  if (units < stages * v) throw new UsageError(`the model has ${units} units, too few for ${stages} stages x ${v} chunks (${name} on ${W} workers)`);
  if (name === "interleaved" && M % W !== 0) return null;
  return { schedule: generateSchedule(name, { stages, microbatches: M, chunks: v, steps, weightGrads: f["weight-grads"] }), stages, v };
}

/** The two one-worker lines (seconds per step t1, tm), then one line per pipeline. */
function reportRuns(out: Out, b: Bench, [t1, tm]: number[], pipelines: readonly Pipeline[], backend: string): void {
  const { workers: W, microbatches: M, batch: B } = b.f;
  const base = B / t1, baseMicro = B / tm;
  const oneWorker = (microbatches: number, t: number, speedup: number, vsMicro: number | null, what: string): void =>
    out({ schedule: "none", workers: 1, microbatches, chunks: 1, batch: B, samples_per_s: round(B / t, 4), speedup, speedup_vs_microbatched: vsMicro,
      ideal: 1, efficiency: null, step_ms: round(t * 1000, 4), balance: null, backend },
    `one worker, ${what}: ${(B / t).toFixed(1)} samples/s (${(t * 1000).toFixed(1)} ms/step)`);
  oneWorker(1, t1, 1, null, "no pipeline");
  // The same M micro-batches with gradient accumulation on one worker: what a pipeline divides up.
  oneWorker(M, tm, round(baseMicro / base, 4), 1, `${M} micro-batches, no pipeline`);
  for (const p of pipelines) {
    const t = p.runner.best;
    const sps = B / t;
    const speedup = sps / base;
    const same = sps / baseMicro;
    // speedup_vs_microbatched: over one worker running the same M micro-batches (gradient accumulation);
    // executor_efficiency: that over the ideal, the micro-batches' own cost taken out (the executor).
    const line = {
      schedule: p.name, workers: W, microbatches: M, chunks: p.v, batch: B, samples_per_s: round(sps, 4), speedup: round(speedup, 4),
      speedup_vs_microbatched: round(same, 4), ideal: round(p.ideal, 4), efficiency: round(speedup / p.ideal, 4),
      executor_efficiency: round(same / p.ideal, 4), weight_grads: b.f["weight-grads"],
      step_ms: round(t * 1000, 4), balance: p.balance, backend,
    };
    out(line, `${p.name.padEnd(12)} ${W} workers: ${sps.toFixed(1)} samples/s, speed-up ${speedup.toFixed(2)} over one worker ` +
      `of ideal ${p.ideal.toFixed(2)} (${(100 * speedup / p.ideal).toFixed(0)}%); ${same.toFixed(2)} over one worker with the same ` +
      `micro-batches (${(100 * same / p.ideal).toFixed(0)}% of ideal), balance ${p.balance.join(",")}`);
  }
}

/**
 * Stand-ins for a model of `units` units cut by `balance`, whose stages sleep their measured costs:
 * a 16-wide MLP with as many units (or, where its units cannot match, as many even stages) does the
 * little real work, on random batches of B rows.
 */
export function sleepingStages(units: number, balance: readonly number[], B: number, M: number, seed: number): { spec: ModelSpec; balance: number[]; batch: SplitBatch } {
  const spec: ModelSpec = { name: "mlp", input: 16, hidden: new Array<number>(units === 1 ? 0 : (units - 2) / 2 | 0).fill(16), classes: 4 };
  const tinyUnits = createModel(spec, seed).units.length;
  const rng = new Rng(seed);
  return { spec, balance: tinyUnits === units ? [...balance] : balanceByCost(new Array<number>(tinyUnits).fill(1), balance.length),
    batch: splitMiniBatch(Tensor.randn([B, 16], rng), Int32Array.from({ length: B }, () => rng.int(4)), M, "bench pipeline") };
}

/**
 * The same schedule with stages that sleep for the measured costs of the real model, so no core is
 * needed to overlap them: measures how close the executor itself comes to the simulator's bound.
 */
async function syntheticRun(b: Bench, p: Pipeline, backend: string) {
  const { schedule, costs: c } = p;
  const W = schedule.workers.length, M = schedule.microbatches;
  const costs = { F: c.forward, B: c.backward, W: c.weight };
  const { batch: B, seed } = b.f;
  const tiny = sleepingStages(b.units, p.balance, B, M, seed);
  const setup: PipelineSetup = { model: tiny.spec, seed, schedule, balance: tiny.balance, recompute: "never", optimizer: { name: "sgd", lr: 0.01 },
    instrumentation: { syntheticCosts: costs } };
  const ex = await ThreadsExecutor.create(setup, createModel(tiny.spec, seed).stateDict());
  const runner = pipelineRunner(ex, schedule, tiny.batch);
  try {
    await timeRunners([runner], b.timing);
  } finally {
    await ex.close();
  }
  const t = runner.best;
  const oneWorkerTime = M * [...costs.F, ...costs.B, ...costs.W].reduce((a, x) => a + x, 0);
  // The sleeping stages pay an FB pair's halves one after the other: no pair time of the real model.
  const sim = simulate(schedule, costModel({ ...c, step: c.step.map(() => 0), pair: undefined }, b.latency));
  const speedup = oneWorkerTime / t;
  return { mode: "synthetic", schedule: p.name, workers: W, microbatches: M, chunks: schedule.chunks, speedup: round(speedup, 4),
    ideal: round(sim.speedup, 4), efficiency: round(speedup / sim.speedup, 4), step_ms: round(t * 1000, 4), backend };
}

/** The simulator's cost model from per-stage measured costs (the physical stages, chunks summed). */
function costModel(c: StageCosts, latencyUs: number): CostModel {
  return { forward: c.forward, backward: c.backward.map((b, s) => b + c.weight[s]), weight: c.weight, step: c.step, message: latencyUs / 1e6,
    ...(c.pair ? { pair: c.pair } : {}) };
}

/**
 * The partitioner's balance and each neighbour (one cut moved by one unit), each measured by
 * running the schedule's own lists (weight-gradient runs, layout copies and the optimizer
 * included, which per-layer profiles miss) and simulated: the shortest simulated step wins.
 */
async function bestSimulatedBalance(schedule: Schedule, start: number[], measure: (b: number[]) => Promise<StageCosts>,
  latencyUs: number): Promise<{ balance: number[]; costs: StageCosts }> {
  const candidates = neighbourBalances(start);
  // Two interleaved passes, least cost per entry: a busy stretch of the machine hits one pass only.
  const costs: (StageCosts | null)[] = candidates.map(() => null);
  for (let pass = 0; pass < 2; pass++) {
    for (const [i, b] of candidates.entries()) {
      const c = await measure(b), prev = costs[i];
      costs[i] = prev ? minCosts(prev, c) : c;
    }
  }
  const makespans = costs.map((c) => simulate(schedule, costModel(c!, latencyUs)).makespan);
  const i = makespans.indexOf(Math.min(...makespans));
  return { balance: candidates[i], costs: costs[i]! };
}

/** Entry by entry the least of two measurements of the same stages, DualPipeV's pair times included. */
export function minCosts(a: StageCosts, b: StageCosts): StageCosts {
  const min = <T extends number | null>(x: readonly T[], y: readonly T[]): T[] => x.map((v, i) => (v === null || y[i] === null ? v : Math.min(v, y[i]!) as T));
  return { forward: min(a.forward, b.forward), backward: min(a.backward, b.backward), weight: min(a.weight, b.weight), step: min(a.step, b.step),
    ...(a.pair && b.pair ? { pair: min(a.pair, b.pair) } : {}) };
}

/** `start` and every balance with one cut moved by one unit (no stage left empty). */
function neighbourBalances(start: readonly number[]): number[][] {
  const out: number[][] = [[...start]];
  for (let c = 0; c + 1 < start.length; c++) {
    for (const d of [-1, 1]) {
      const b = [...start];
      b[c] += d; b[c + 1] -= d;
      if (b[c] > 0 && b[c + 1] > 0) out.push(b);
    }
  }
  return out;
}
