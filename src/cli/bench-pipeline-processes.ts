// `pipewright bench pipeline --executor processes` (under mpirun -n W): the same MLP, batch and
// schedules as the threads bench, on one MPI rank per worker, next to the threads executor with the
// same stages in the same job. Rounds alternate: every rank times the processes executor, then rank
// 0 alone times W worker threads while the other ranks wait in a barrier (asleep: the MPI transport
// does not spin), so both see the same machine. Rank 0 prints one line per schedule.
import { UsageError, type FlagValues } from "./args.js";
import { getBackend } from "../backend/index.js";
import { splitBatch } from "../data/microbatch.js";
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { balanceByCost } from "../pipeline/partition.js";
import { profileUnitTimes } from "../pipeline/runtime/profile.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { ProcessesExecutor, agreeOnRank0, startGroups } from "../pipeline/runtime/processes.js";
import { generateSchedule, type WeightGradMode } from "../pipeline/schedule/index.js";
import type { SplitBatch } from "../pipeline/runtime/executor.js";
import { launchEnv } from "../transport/mpi/env.js";
import { oneWayLatency } from "../transport/mpi/bench.js";
import { measureWorkerCosts } from "../pipeline/runtime/profile.js";
import { simulate } from "../sim/index.js";

const SYNC = ["gpipe", "1f1b", "interleaved", "zb-h1"];

export interface ProcessesBenchLine {
  schedule: string; workers: number; microbatches: number; batch: number;
  processes_samples_per_s: number; threads_samples_per_s: number; ratio: number; balance: number[]; backend: string;
  /** Per worker: ms inside actions in the fastest step (the rest of step_ms is waiting). */
  processes_busy_ms: number[]; threads_busy_ms: number[]; processes_step_ms: number; threads_step_ms: number;
  /** threads / processes step time with stages that sleep their measured costs (executor overhead only). */
  synthetic_ratio: number;
}

export async function runProcessesPipelineBench(f: FlagValues): Promise<number> {
  const W = f.workers as number, M = f.microbatches as number, B = f.batch as number, V = f.chunks as number, seed = f.seed as number;
  if (!launchEnv()) throw new UsageError(`bench pipeline --executor processes runs on ${W} MPI ranks: \`pipewright launch -n ${W} -- bench pipeline --executor processes\``);
  const schedules = (f.schedules as string[]).filter((s) => SYNC.includes(s));
  const g = await startGroups(W);
  const spec: ModelSpec = { name: "mlp", input: 784, hidden: new Array<number>((f.depth as number) - 1).fill(f.width as number), classes: 10 };
  const rng = new Rng(seed);
  const parts = splitBatch({ x: Tensor.randn([B, 784], rng), y: Int32Array.from({ length: B }, () => rng.int(10)) }, M);
  const batch = { inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / B };
  const times = await agreeOnRank0(g.mpi.rank === 0 ? profileUnitTimes(spec, seed, parts[0].x, 5) : [], W);
  const timing = { warmup: f.warmup as number, steps: f.steps as number, rounds: f.rounds as number };
  // The simulator's message cost: one activation's one-way time between two ranks of this job.
  const latency = await oneWayLatency(g.mpi, g.pipeComm, parts[0].x.shape[0] * (f.width as number) * 4);
  for (const name of schedules) {
    const v = name === "interleaved" ? V : 1;
    if (name === "interleaved" && M % W !== 0) continue;
    const schedule = generateSchedule(name, { stages: W, microbatches: M, chunks: v, weightGrads: f["weight-grads"] as WeightGradMode });
    const balance = balanceByCost(times, W * v);
    const setup: PipelineSetup = { model: spec, seed, schedule, balance, recompute: "never", optimizer: { name: "sgd", lr: 0.01, momentum: 0.9 } };
    const real = await compare(g, setup, batch, timing);
    // The same lists with stages that sleep the threads run's measured costs (a 16-wide MLP with as
    // many units does the little real work): the executors' own overlap, apart from free cores.
    const busy = await agreeOnRank0(real.busyT, W);
    const tiny: ModelSpec = { ...spec, input: 16, hidden: (spec.hidden ?? []).map(() => 16), classes: 4 };
    const costs = { F: busy.map((b) => b / (3 * M)), B: busy.map((b) => (2 * b) / (3 * M)), W: busy.map(() => 0) };
    const trng = new Rng(seed);
    const tparts = splitBatch({ x: Tensor.randn([B, 16], trng), y: Int32Array.from({ length: B }, () => trng.int(4)) }, M);
    const tbatch = { inputs: tparts.map((p) => p.x), labels: tparts.map((p) => p.y), scale: 1 / B };
    const synth = await compare(g, { ...setup, model: tiny, instrumentation: { syntheticCosts: costs } }, tbatch, timing);
    if (g.mpi.rank !== 0) continue;
    await predict(name, setup, batch, real.bestP, latency, times, f.json === true, f["weight-grads"] as WeightGradMode);
    const line: ProcessesBenchLine = { schedule: name, workers: W, microbatches: M, batch: B, processes_samples_per_s: Number((B / real.bestP).toFixed(1)),
      threads_samples_per_s: Number((B / real.bestT).toFixed(1)), ratio: Number((real.bestT / real.bestP).toFixed(3)), balance, backend: getBackend().name,
      processes_busy_ms: real.busyP.map((b) => Number((b * 1000).toFixed(1))), threads_busy_ms: real.busyT.map((b) => Number((b * 1000).toFixed(1))),
      processes_step_ms: Number((real.bestP * 1000).toFixed(1)), threads_step_ms: Number((real.bestT * 1000).toFixed(1)),
      synthetic_ratio: Number((synth.bestT / synth.bestP).toFixed(3)) };
    process.stdout.write((f.json ? JSON.stringify(line) : `${name.padEnd(12)} ${W} processes: ${line.processes_samples_per_s} samples/s, ` +
      `${W} threads: ${line.threads_samples_per_s} samples/s; processes/threads ${(line.ratio * 100).toFixed(1)}% ` +
      `(time in actions per worker: processes ${line.processes_busy_ms.join(",")} ms, threads ${line.threads_busy_ms.join(",")} ms); ` +
      `with sleeping stages ${(line.synthetic_ratio * 100).toFixed(1)}%; balance ${balance.join(",")}`) + "\n");
  }
  return 0;
}

interface Timing { warmup: number; steps: number; rounds: number }
interface Comparison { bestP: number; bestT: number; busyP: number[]; busyT: number[] }

/** Fastest step (and its per-worker busy seconds) of the processes executor and, on rank 0, of threads. */
async function compare(g: Awaited<ReturnType<typeof startGroups>>, setup: PipelineSetup, batch: SplitBatch, timing: Timing): Promise<Comparison> {
  const state = createModel(setup.model!, setup.seed ?? 0).stateDict();
  const proc = await ProcessesExecutor.create(setup, { state });
  const threads = g.mpi.rank === 0 ? await ThreadsExecutor.create(setup, state) : null;
  const out: Comparison = { bestP: Infinity, bestT: Infinity, busyP: [], busyT: [] };
  try {
    for (let i = 0; i < timing.warmup; i++) await proc.step(batch);
    for (let i = 0; i < timing.warmup && threads; i++) await threads.step(batch);
    await g.world.barrier();
    for (let r = 0; r < timing.rounds; r++) {
      for (let i = 0; i < timing.steps; i++) {
        const t0 = performance.now();
        const res = await proc.step(batch);
        const t = (performance.now() - t0) / 1000;
        if (t < out.bestP) { out.bestP = t; out.busyP = res.busy; }
      }
      for (let i = 0; i < timing.steps && threads; i++) {
        const t0 = performance.now();
        const res = await threads.step(batch);
        const t = (performance.now() - t0) / 1000;
        if (t < out.bestT) { out.bestT = t; out.busyT = res.busy; }
      }
      await g.world.barrier(); // the other ranks sleep here while rank 0 times the threads
    }
  } finally {
    await proc.close();
    await threads?.close();
  }
  return out;
}

/**
 * The simulator's step time for this schedule from per-worker costs measured on one thread (the
 * inline executor) plus the measured message time, against the measured processes step; then its
 * predictions for 8 and 16 ranks (the same model cut into 8 and 16 stages; not measured here).
 */
async function predict(name: string, setup: PipelineSetup, batch: SplitBatch, measured: number, latency: number, times: number[], json: boolean,
  weightGrads: WeightGradMode): Promise<void> {
  const B = batch.inputs.reduce((a, x) => a + x.shape[0], 0);
  const simulated = async (su: PipelineSetup): Promise<number> => {
    const c = await measureWorkerCosts(su, batch, 3);
    return simulate(su.schedule, { forward: c.forward, backward: c.backward.map((b, s) => b + c.weight[s]), weight: c.weight, step: c.step, message: latency }).makespan;
  };
  const W = setup.schedule.workers.length;
  const here = await simulated(setup);
  const row = { bench: "sim", schedule: name, ranks: W, predicted_step_ms: Number((here * 1000).toFixed(1)), measured_step_ms: Number((measured * 1000).toFixed(1)),
    error: Number((here / measured - 1).toFixed(3)), message_us: Number((latency * 1e6).toFixed(1)) };
  process.stdout.write((json ? JSON.stringify(row) : `${name.padEnd(12)} sim: ${row.predicted_step_ms} ms predicted for ${W} ranks, ${row.measured_step_ms} ms measured (${(row.error * 100).toFixed(1)}%)`) + "\n");
  const units = times.length;
  for (const ranks of [8, 16]) {
    const v = setup.schedule.chunks;
    if (units < ranks * v || (name === "interleaved" && setup.schedule.microbatches % ranks !== 0)) continue;
    const schedule = generateSchedule(name, { stages: ranks, microbatches: setup.schedule.microbatches, chunks: v, weightGrads });
    const t = await simulated({ ...setup, schedule, balance: balanceByCost(times, ranks * v) });
    const p = { bench: "sim", schedule: name, ranks, predicted_step_ms: Number((t * 1000).toFixed(1)), predicted_samples_per_s: Number((B / t).toFixed(1)), prediction: true };
    process.stdout.write((json ? JSON.stringify(p) : `${name.padEnd(12)} sim: ${p.predicted_step_ms} ms per step, ${p.predicted_samples_per_s} samples/s predicted for ${ranks} ranks (a prediction, not measured)`) + "\n");
  }
}
