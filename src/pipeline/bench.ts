// `pipewright bench pipeline`: throughput of pipeline training on worker threads against one worker
// without a pipeline (issue 3): an MLP of depth 8 (eight Linear layers) and width 1024 on 784-pixel
// inputs, batch 256, M = 8. First the one-worker run (plain single-device steps on whole mini-
// batches), then W workers on the threads executor under each schedule. Each line reports
// samples/s, the speed-up over one worker, and `ideal`: the simulator's speed-up for that schedule
// with measured per-stage F/B/W costs and the measured message latency. Also measured: the one-way
// latency of a message between two worker threads (empty, and an activation-sized transferred
// buffer). Kernels are single-threaded per worker (the native backend pins oneDNN to one thread).
import { MessageChannel, Worker } from "node:worker_threads";
import { helpText, parseFlags, UsageError, type CommandSpec } from "../cli/args.js";
import { backward } from "../autograd/engine.js";
import { BACKEND_NAMES, getBackend, setBackend, type BackendName } from "../backend/index.js";
import { splitBatch } from "../data/microbatch.js";
import { crossEntropyLoss } from "../nn/loss.js";
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { SGD } from "../optim/index.js";
import { simulate } from "../sim/index.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { balanceByCost } from "./partition.js";
import { measureStageCosts, profileUnitTimes } from "./runtime/profile.js";
import type { PipelineSetup } from "./runtime/setup.js";
import { ThreadsExecutor } from "./runtime/threads.js";
import { InlineExecutor } from "./runtime/inline.js";
import type { SplitBatch } from "./runtime/executor.js";
import { generateSchedule, SCHEDULE_NAMES } from "./schedule/index.js";

const SYNC_SCHEDULES = ["gpipe", "1f1b", "interleaved", "zb-h1"];

export const benchPipelineCommand: CommandSpec = {
  name: "bench pipeline",
  summary: "Pipeline throughput on worker threads: an MLP of depth 8 and width 1024 on 784-pixel inputs, batch 256, " +
    "M = 8; one worker without a pipeline, then the workers under each schedule. One JSON object per line with --json: " +
    "{\"schedule\", \"workers\", \"microbatches\", \"samples_per_s\", \"speedup\", \"speedup_vs_microbatched\", \"ideal\", \"efficiency\", ...}, plus " +
    "message latency lines {\"bench\": \"message\", \"payload_bytes\", \"one_way_us\"}.",
  flags: {
    json: { type: "bool", help: "one JSON object per line" },
    schedules: { type: "list", default: SYNC_SCHEDULES.join(","), help: `schedules to run, from ${SCHEDULE_NAMES.filter((s) => s !== "async").join(", ")}`, meta: "S,S,..." },
    workers: { type: "int", min: 1, default: 2, help: "pipeline workers (stages)", meta: "W" },
    microbatches: { type: "int", min: 1, default: 8, help: "micro-batches per mini-batch", meta: "M" },
    batch: { type: "int", min: 1, default: 256, help: "mini-batch size", meta: "B" },
    depth: { type: "int", min: 1, default: 8, help: "Linear layers of the MLP", meta: "D" },
    width: { type: "int", min: 1, default: 1024, help: "hidden width of the MLP", meta: "H" },
    chunks: { type: "int", min: 2, default: 2, help: "chunks per worker for the interleaved schedule", meta: "V" },
    steps: { type: "int", min: 1, default: 8, help: "timed optimizer steps per run", meta: "N" },
    warmup: { type: "int", min: 0, default: 2, help: "untimed steps per run", meta: "N" },
    seed: { type: "int", default: 0, help: "seed for weights and data", meta: "S" },
    backend: { type: "string", choices: BACKEND_NAMES, help: "kernel backend (default: native, or $PIPEWRIGHT_BACKEND)" },
  },
  examples: ["pipewright bench pipeline --json", "pipewright bench pipeline --schedules gpipe,1f1b --steps 4"],
};

export interface PipelineBenchLine {
  schedule: string;
  workers: number;
  microbatches: number;
  chunks: number;
  batch: number;
  samples_per_s: number;
  /** Over one worker training on whole mini-batches (no pipeline, no micro-batches). */
  speedup: number | null;
  /** Over one worker running the same M micro-batches with gradient accumulation. */
  speedup_vs_microbatched: number | null;
  /** The simulator's speed-up for this schedule with measured per-stage costs (same micro-batches). */
  ideal: number | null;
  /** speedup_vs_microbatched / ideal. */
  efficiency: number | null;
  step_ms: number;
  balance: number[] | null;
  backend: string;
}

function round(x: number, d = 4): number { return Number(x.toPrecision(d)); }

/** Median one-way latency (µs) of a message between two worker threads, `bytes` transferred each way. */
export async function measureMessageLatency(bytes: number, rounds = 2000): Promise<number> {
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

function mlpSpec(depth: number, width: number): ModelSpec {
  return { name: "mlp", input: 784, hidden: new Array<number>(depth - 1).fill(width), classes: 10 };
}

/** One worker, no pipeline: plain single-device steps on whole mini-batches in this thread. */
function oneWorker(spec: ModelSpec, seed: number, x: Tensor, y: Int32Array, warmup: number, steps: number): number {
  const model = createModel(spec, seed);
  const opt = new SGD(model.namedParameters(), { lr: 0.01, momentum: 0.9 });
  const run = (): void => { backward(crossEntropyLoss(model.forward(x), y)); opt.step(); opt.zeroGrad(); };
  for (let i = 0; i < warmup; i++) run();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) run();
  return (performance.now() - t0) / 1000 / steps;
}

/** One worker, the same micro-batches (a one-stage pipeline on the inline executor). */
async function oneWorkerMicrobatched(spec: ModelSpec, seed: number, batch: SplitBatch, M: number, warmup: number, steps: number): Promise<number> {
  const schedule = generateSchedule("gpipe", { stages: 1, microbatches: M });
  const model = createModel(spec, seed);
  const ex = new InlineExecutor(model, { model: spec, seed, schedule, balance: [model.units.length], recompute: "never", optimizer: { kind: "sgd", lr: 0.01, momentum: 0.9 } });
  for (let i = 0; i < warmup; i++) await ex.step(batch);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await ex.step(batch);
  return (performance.now() - t0) / 1000 / steps;
}

export async function runPipelineBench(argv: string[]): Promise<number> {
  const f = parseFlags(benchPipelineCommand, argv);
  if (f.help) { process.stdout.write(helpText(benchPipelineCommand) + "\n"); return 0; }
  if (f.backend !== undefined) setBackend(f.backend as BackendName);
  const backend = getBackend().name;
  const schedules = typeof f.schedules === "string" ? f.schedules.split(",").map((s) => s.trim()) : (f.schedules as string[]);
  for (const s of schedules) {
    if (!SYNC_SCHEDULES.includes(s)) throw new UsageError(`--schedules: '${s}' is not a benchmarkable schedule; valid: ${SYNC_SCHEDULES.join(", ")}`);
  }
  const W = f.workers as number, M = f.microbatches as number, B = f.batch as number, V = f.chunks as number;
  const steps = f.steps as number, warmup = f.warmup as number, seed = f.seed as number;
  if (B < M) throw new UsageError(`--batch ${B} cannot be split into --microbatches ${M}`);
  const spec = mlpSpec(f.depth as number, f.width as number);
  const units = createModel(spec, seed).units.length;
  const out = (line: object, text: string): void => { process.stdout.write((f.json ? JSON.stringify(line) : text) + "\n"); };

  const rng = new Rng(seed);
  const x = Tensor.randn([B, 784], rng);
  const y = Int32Array.from({ length: B }, () => rng.int(10));
  const parts = splitBatch({ x, y }, M);
  const batch = { inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / B };

  const activationBytes = parts[0].x.shape[0] * (f.width as number) * 4;
  const latencyEmpty = await measureMessageLatency(0);
  const latency = await measureMessageLatency(activationBytes);
  out({ bench: "message", payload_bytes: 0, one_way_us: round(latencyEmpty) }, `message between worker threads: ${latencyEmpty.toFixed(1)} µs one way (empty)`);
  out({ bench: "message", payload_bytes: activationBytes, transferred: true, one_way_us: round(latency) },
    `message between worker threads: ${latency.toFixed(1)} µs one way (${activationBytes} bytes, transferred)`);

  const t1 = oneWorker(spec, seed, x, y, warmup, steps);
  const base = B / t1;
  out({ schedule: "none", workers: 1, microbatches: 1, chunks: 1, batch: B, samples_per_s: round(base), speedup: 1,
    speedup_vs_microbatched: null, ideal: 1, efficiency: null, step_ms: round(t1 * 1000), balance: null, backend } satisfies PipelineBenchLine,
  `one worker, no pipeline: ${base.toFixed(1)} samples/s (${(t1 * 1000).toFixed(1)} ms/step)`);
  // The same M micro-batches with gradient accumulation on one worker: what a pipeline divides up.
  const tm = await oneWorkerMicrobatched(spec, seed, batch, M, warmup, steps);
  const baseMicro = B / tm;
  out({ schedule: "none", workers: 1, microbatches: M, chunks: 1, batch: B, samples_per_s: round(baseMicro), speedup: round(baseMicro / base),
    speedup_vs_microbatched: 1, ideal: 1, efficiency: null, step_ms: round(tm * 1000), balance: null, backend } satisfies PipelineBenchLine,
  `one worker, ${M} micro-batches, no pipeline: ${baseMicro.toFixed(1)} samples/s (${(tm * 1000).toFixed(1)} ms/step)`);

  // Balanced stages from measured per-layer times (on a micro-batch), as a user's --partition time.
  const unitTimes = profileUnitTimes(spec, seed, parts[0].x);
  for (const name of schedules) {
    const v = name === "interleaved" ? V : 1;
    if (units < W * v) throw new UsageError(`the model has ${units} units, too few for ${W} workers x ${v} chunks`);
    if (name === "interleaved" && M % W !== 0) {
      out({ schedule: name, skipped: `M=${M} is not a multiple of ${W} workers` }, `${name}: skipped (M not a multiple of the workers)`);
      continue;
    }
    const schedule = generateSchedule(name, { stages: W, microbatches: M, chunks: v });
    const balance = balanceByCost(unitTimes, W * v);
    const setup: PipelineSetup = { model: spec, seed, schedule, balance, recompute: "never", optimizer: { kind: "sgd", lr: 0.01, momentum: 0.9 } };
    // The simulator's bound from the measured costs of exactly these stages (chunks summed per worker).
    const c = measureStageCosts(spec, seed, balance, parts[0].x, parts[0].y);
    const perWorker = (xs: number[]): number[] => Array.from({ length: W }, (_, s) => xs.filter((_, vs) => vs % W === s).reduce((a, b) => a + b, 0));
    const sim = simulate(schedule, { forward: perWorker(c.forward), backward: perWorker(c.backward), weight: perWorker(c.weight), message: latency / 1e6 });
    const ex = await ThreadsExecutor.create(setup, createModel(spec, seed).stateDict());
    let t: number;
    try {
      for (let i = 0; i < warmup; i++) await ex.step(batch);
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) await ex.step(batch);
      t = (performance.now() - t0) / 1000 / steps;
    } finally {
      await ex.close();
    }
    const sps = B / t;
    const speedup = sps / base;
    const same = sps / baseMicro;
    const line: PipelineBenchLine = {
      schedule: name, workers: W, microbatches: M, chunks: v, batch: B, samples_per_s: round(sps), speedup: round(speedup),
      speedup_vs_microbatched: round(same), ideal: round(sim.speedup), efficiency: round(same / sim.speedup),
      step_ms: round(t * 1000), balance, backend,
    };
    out(line, `${name.padEnd(12)} ${W} workers: ${sps.toFixed(1)} samples/s, speed-up ${speedup.toFixed(2)} over one worker ` +
      `(${same.toFixed(2)} over one worker with the same micro-batches) of ideal ${sim.speedup.toFixed(2)}: ` +
      `${(100 * same / sim.speedup).toFixed(0)}% efficient, balance ${balance.join(",")}`);
  }
  return 0;
}
