// `pipewright bench pipeline --executor processes` (under mpirun -n W): the same MLP, batch and
// schedules as the threads bench, on one MPI rank per worker, next to the threads executor with the
// same stages in the same job. Rounds alternate: every rank times the processes executor, then rank
// 0 alone times W worker threads while the other ranks wait in a barrier (asleep: the MPI transport
// does not spin), so both see the same machine. The threads are timed only where rank 0 may use W
// cores (launch --bind none): a rank bound to one core would run all W threads on it, a comparison
// of one core with W. scripts/compare-executors times both fairly, one after the other. Rank 0 prints one line per schedule, after the
// schedule's `sim` rows: the simulator fed with the costs the processes executor recorded in each of
// its own timed steps predicts that step (bench-sim-rows.ts), then 8 and 16 ranks (predictions).
import { UsageError } from "./args.js";
import { emit } from "./output.js";
import { activationBytes, sleepingStages, stagesOn, type BenchPipelineFlags } from "./bench-pipeline.js";
import { cpuLabel, getBackend, machineCpu } from "../backend/index.js";
import { benchConfigOf, createModel } from "../nn/models/index.js";
import { benchBatch } from "../train/bench-engine.js";
import { splitMiniBatch } from "../pipeline/runtime/split.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { Rng } from "../tensor/random.js";
import { balanceByCost } from "../pipeline/partition.js";
import { profileUnitTimes } from "../pipeline/runtime/profile.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { ProcessesExecutor, agreeOnRank0, startGroups, type RankTimings } from "../pipeline/runtime/processes.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateSchedule } from "../pipeline/schedule/index.js";
import type { SplitBatch } from "../pipeline/runtime/executor.js";
import { launchEnv } from "../transport/mpi/env.js";
import { oneWayLatency } from "../transport/mpi/bench.js";
import { formatPredictionRow, formatSimRow, predictionRows, simRow, type RecordedStep, type SimInputs } from "./bench-sim-rows.js";
import { availableParallelism, cpus, loadavg } from "node:os";
import { traceFileFor, writeRecordedTrace } from "../trace/trace-writer.js";

interface ProcessesBenchLine {
  schedule: string; workers: number; microbatches: number; batch: number;
  /** threads_samples_per_s and ratio (threads / processes step time) are null where rank 0 cannot use W cores. */
  processes_samples_per_s: number; threads_samples_per_s: number | null; ratio: number | null; balance: number[]; backend: string;
  /** Per worker: ms inside actions in the fastest step (the rest of step_ms is waiting). */
  processes_busy_ms: number[]; threads_busy_ms: number[]; processes_step_ms: number; threads_step_ms: number;
  /** threads / processes step time with stages that sleep their measured costs (executor overhead only). */
  synthetic_ratio: number | null;
}

export async function runProcessesPipelineBench(f: BenchPipelineFlags, spec: ModelSpec): Promise<number> {
  const { workers: W, microbatches: M, batch: B, seed } = f;
  if (!launchEnv()) throw new UsageError(`bench pipeline --executor processes runs on ${W} MPI ranks: \`pipewright launch -n ${W} -- bench pipeline --executor processes\``);
  // A processes step is one flushed list per rank: the asynchronous lists span several steps.
  const schedules = f.schedules.filter((s) => s !== "async");
  const g = await startGroups(W);
  const { x, y } = benchBatch(benchConfigOf(spec, B), new Rng(seed));
  const batch = splitMiniBatch(x, y, M, "bench pipeline");
  const times = await agreeOnRank0(g.mpi.rank === 0 ? profileUnitTimes(spec, seed, batch.inputs[0], 5) : [], W);
  const timing = { warmup: f.warmup, steps: f.steps, rounds: f.rounds };
  // Every rank must agree: the sleeping-stage comparison is collective.
  const fairThreads = await agreeOnRank0(threadsFair(W), W);
  // Ping-pong between two ranks of this job at 1 KB and one activation: the per-byte part of a
  // message's time (the simulator's fixed part is measured inside the pipeline's own steps).
  const bytes = activationBytes(createModel(spec, 0), batch);
  const small = await oneWayLatency(g.mpi, g.pipeComm, 1024);
  const latency = await oneWayLatency(g.mpi, g.pipeComm, bytes);
  const perByte = bytes > 1024 ? Math.max(0, (latency - small) / (bytes - 1024)) : 0;
  // The machine's cores (a rank bound to one core sees only its own).
  const cpu = cpuLabel({ ...machineCpu(), cores: cpus().length });
  if (g.mpi.rank === 0 && !f.json) process.stdout.write(`cpu: ${cpu}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
  if (g.mpi.rank === 0 && schedules.length < f.schedules.length) {
    emit(f.json, { schedule: "async", skipped: "asynchronous lists span several steps; bench it with --executor threads" },
      "async: skipped on processes (its lists span several steps; bench it with --executor threads)");
  }
  for (const name of schedules) {
    const v = name === "interleaved" ? f.chunks : 1;
    if (name === "interleaved" && M % W !== 0) continue;
    const stages = stagesOn(name, W, v, times.length);
    const schedule = generateSchedule(name, { stages, microbatches: M, chunks: v, weightGrads: f["weight-grads"] });
    const balance = balanceByCost(times, stages * v);
    const setup: PipelineSetup = { model: spec, seed, schedule, balance, recompute: "never", optimizer: { name: "sgd", lr: 0.01, momentum: 0.9 } };
    const real = await compare(g, { ...setup, instrumentation: { recordActions: true } }, batch, timing);
    if (g.mpi.rank === 0 && f.records !== undefined) writeFileSync(join(f.records, `${name}-${W}.json`), JSON.stringify(real.steps));
    const synth = f.synthetic && fairThreads ? await sleepingComparison(g, setup, times.length, real, B, timing) : null;
    if (g.mpi.rank !== 0) continue;
    if (f.trace !== undefined) writeRecordedTrace(traceFileFor(f.trace, name, schedules.length > 1), "processes", schedule, real.steps.map((s) => s.ranks));
    const inputs: SimInputs = { name, schedule, steps: real.steps, cores: cpus().length, perByte, messageBytes: bytes, pingPong: latency, cpu,
      pinned: availableParallelism() === 1 && cpus().length > 1 };
    const { row, measured } = simRow(inputs);
    emit(f.json, row, formatSimRow(row));
    for (const p of predictionRows(inputs, measured, balance, times, B, f["weight-grads"])) emit(f.json, p, formatPredictionRow(p));
    emitLine(f.json, { schedule: name, workers: W, microbatches: M, batch: B, balance }, real, synth);
  }
  return 0;
}

/**
 * The same lists with stages that sleep the threads run's measured costs (the processes run's where
 * threads were not timed): the executors' own overlap, apart from free cores. Collective.
 */
async function sleepingComparison(g: Groups, setup: PipelineSetup, units: number, real: Comparison, B: number, timing: Timing): Promise<Comparison> {
  const { schedule } = setup, W = schedule.workers.length, M = schedule.microbatches;
  const busy = await agreeOnRank0(real.busyT.length ? real.busyT : real.busyP, W);
  // Per stage: its worker's busy time over the worker's F and B actions (B = 2F; V: two stages each).
  const share = (k: number): number[] => schedule.stageToWorker.map((w) => (k * busy[w]) / (3 * M * (schedule.stages / W)));
  const tiny = sleepingStages(units, setup.balance, B, M, setup.seed ?? 0);
  return compare(g, { ...setup, model: tiny.spec, balance: tiny.balance, instrumentation: { syntheticCosts: { F: share(1), B: share(2), W: share(0) } } },
    tiny.batch, timing);
}

/** Rank 0's line of a schedule: processes against threads (null where rank 0 cannot use W cores), and with sleeping stages. */
function emitLine(json: boolean | undefined, at: Pick<ProcessesBenchLine, "schedule" | "workers" | "microbatches" | "batch" | "balance">,
  real: Comparison, synth: Comparison | null): void {
  const { schedule: name, workers: W, batch: B } = at;
  const fair = Number.isFinite(real.bestT);
  const ms = (s: number): number => Number((s * 1000).toFixed(1));
  const line: ProcessesBenchLine = { schedule: name, workers: W, microbatches: at.microbatches, batch: B, processes_samples_per_s: Number((B / real.bestP).toFixed(1)),
    threads_samples_per_s: fair ? Number((B / real.bestT).toFixed(1)) : null, ratio: fair ? Number((real.bestT / real.bestP).toFixed(3)) : null,
    balance: at.balance, backend: getBackend().name, processes_busy_ms: real.busyP.map(ms), threads_busy_ms: real.busyT.map(ms),
    processes_step_ms: ms(real.bestP), threads_step_ms: ms(real.bestT), synthetic_ratio: fair && synth ? Number((synth.bestT / synth.bestP).toFixed(3)) : null };
  const vsThreads = line.ratio === null ? `${W} threads: not timed (rank 0 may use ${availableParallelism()} core(s); launch --bind none, or scripts/compare-executors)`
    : `${W} threads: ${line.threads_samples_per_s} samples/s; processes/threads ${(line.ratio * 100).toFixed(1)}%`;
  emit(json, line, `${name.padEnd(12)} ${W} processes: ${line.processes_samples_per_s} samples/s, ${vsThreads} ` +
    `(time in actions per worker: processes ${line.processes_busy_ms.join(",")} ms, threads ${line.threads_busy_ms.join(",") || "-"} ms); ` +
    `${line.synthetic_ratio !== null ? `with sleeping stages ${(line.synthetic_ratio * 100).toFixed(1)}%` : "no sleeping-stage comparison"}; balance ${at.balance.join(",")}`);
}

/**
 * Whether W worker threads inside this rank get the cores the W ranks get: all of the machine's (or
 * W of them), not the one core a bound rank has.
 */
function threadsFair(workers: number): boolean {
  return availableParallelism() >= Math.min(workers, cpus().length);
}

interface Timing { warmup: number; steps: number; rounds: number }
/** steps: every timed processes step, rank 0's wall seconds and (when recorded) every rank's timings. */
interface Comparison { bestP: number; bestT: number; busyP: number[]; busyT: number[]; steps: RecordedStep[] }

/** Fastest step (and its per-worker busy seconds) of the processes executor and, on rank 0, of threads. */
type Groups = Awaited<ReturnType<typeof startGroups>>;

async function compare(g: Groups, setup: PipelineSetup, batch: SplitBatch, timing: Timing): Promise<Comparison> {
  const state = createModel(setup.model!, setup.seed ?? 0).stateDict();
  const proc = await ProcessesExecutor.create(setup, { state });
  const threads = g.mpi.rank === 0 && threadsFair(setup.schedule.workers.length) ? await ThreadsExecutor.create(setup, state) : null;
  const out: Comparison = { bestP: Infinity, bestT: Infinity, busyP: [], busyT: [], steps: [] };
  const mine: (RankTimings | null)[] = [];
  try {
    for (let i = 0; i < timing.warmup; i++) await proc.step(batch);
    for (let i = 0; i < timing.warmup && threads; i++) await threads.step(batch);
    await g.world.barrier();
    for (let r = 0; r < timing.rounds; r++) {
      for (let i = 0; i < timing.steps; i++) {
        const t0 = performance.now();
        const res = await proc.step(batch);
        const t = (performance.now() - t0) / 1000;
        mine.push(proc.stepTimings()?.[0] ?? null);
        out.steps.push({ seconds: t, ranks: [] });
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
    // Every rank's timings of every timed step, on rank 0 (after the timing: gathering costs time).
    if (setup.instrumentation?.recordActions) {
      const all = await g.world.allGather(mine);
      out.steps.forEach((st, i) => { st.ranks = all.map((r) => r[i]!); });
    }
  } finally {
    await proc.close();
    await threads?.close();
  }
  return out;
}
