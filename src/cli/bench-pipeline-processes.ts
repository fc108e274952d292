// `pipewright bench pipeline --executor processes` (under mpirun -n W): the same MLP, batch and
// schedules as the threads bench, on one MPI rank per worker, next to the threads executor with the
// same stages in the same job. Rounds alternate: every rank times the processes executor, then rank
// 0 alone times W worker threads while the other ranks wait in a barrier (asleep: the MPI transport
// does not spin), so both see the same machine. The threads are timed only where rank 0 may use W
// cores (launch --bind none): a rank bound to one core would run all W threads on it, a comparison
// of one core with W. scripts/compare-executors times both fairly, one after the other. Rank 0 prints
// one line per schedule, after the schedule's `sim` rows: the simulator fed with the costs the processes executor recorded in each of
// its own timed steps predicts that step (bench-sim-rows.ts), then 8 and 16 ranks (predictions).
import { UsageError } from "./args.js";
import { emit } from "./output.js";
import { activationBytes, benchSchedule, sleepingStages, type BenchPipelineFlags, type Timing } from "./bench-pipeline.js";
import { cpuLabel, getBackend, machineCpu } from "../backend/index.js";
import { createModel } from "../nn/models/index.js";
import type { ModelSpec } from "../nn/models/spec.js";
import { balanceByCost } from "../pipeline/partition.js";
import { profileUnitTimes } from "../pipeline/runtime/profile.js";
import type { PipelineSetup } from "../pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../pipeline/runtime/threads.js";
import { ProcessesExecutor, agreeOnRank0, startGroups, type RankTimings } from "../pipeline/runtime/processes.js";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SplitBatch } from "../pipeline/runtime/executor.js";
import { launchEnv } from "../transport/mpi/env.js";
import { oneWayLatency } from "../transport/mpi/bench.js";
import { predictionRows, simRow, type RecordedStep, type SimInputs } from "./bench-sim-rows.js";
import { availableParallelism, cpus, loadavg } from "node:os";
import { traceFileFor, writeRecordedTrace } from "../trace/trace-writer.js";

type Groups = Awaited<ReturnType<typeof startGroups>>;
/** What every schedule's comparison shares: the job, the timing, whether rank 0 times threads (see threadsFair). */
interface Job { g: Groups; timing: Timing; fair: boolean }

export async function runProcessesPipelineBench(f: BenchPipelineFlags, spec: ModelSpec, batch: SplitBatch): Promise<number> {
  const { workers: W, batch: B, seed } = f;
  if (!launchEnv()) throw new UsageError(`bench pipeline --executor processes runs on ${W} MPI ranks: \`pipewright launch -n ${W} -- bench pipeline --executor processes\``);
  // A processes step is one flushed list per rank: the asynchronous lists span several steps.
  const schedules = f.schedules.filter((s) => s !== "async");
  const g = await startGroups(W);
  const times = await agreeOnRank0(g.mpi.rank === 0 ? profileUnitTimes(spec, seed, batch.inputs[0], 5) : [], W);
  // Every rank must agree: the sleeping-stage comparison is collective. W worker threads inside
  // rank 0 get the cores the W ranks get only where it may use all of the machine's (or W of them).
  const job: Job = { g, timing: { warmup: f.warmup, steps: f.steps, rounds: f.rounds }, fair: await agreeOnRank0(availableParallelism() >= Math.min(W, cpus().length), W) };
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
    const s = benchSchedule(f, name, times.length);
    if (!s) continue;
    const { schedule } = s, balance = balanceByCost(times, s.stages * s.v);
    const setup: PipelineSetup = { model: spec, seed, schedule, balance, recompute: "never", optimizer: { name: "sgd", lr: 0.01, momentum: 0.9 } };
    const real = await compare(job, { ...setup, instrumentation: { recordActions: true } }, batch);
    if (g.mpi.rank === 0 && f.records !== undefined) writeFileSync(join(f.records, `${name}-${W}.json`), JSON.stringify(real.steps));
    const synth = f.synthetic && job.fair ? await sleepingComparison(job, setup, times.length, real, B) : null;
    if (g.mpi.rank !== 0) continue;
    if (f.trace !== undefined) writeRecordedTrace(traceFileFor(f.trace, name, schedules.length > 1), "processes", schedule, real.steps.map((s) => s.ranks));
    const inputs: SimInputs = { name, schedule, steps: real.steps, cores: cpus().length, perByte, messageBytes: bytes, pingPong: latency, cpu,
      pinned: availableParallelism() === 1 && cpus().length > 1 };
    const sim = simRow(inputs);
    for (const r of [sim, ...predictionRows(inputs, sim.measured, balance, times, B, f["weight-grads"])]) emit(f.json, r.row, r.text);
    emitLine(f.json, name, W, f.microbatches, B, balance, real, synth);
  }
  return 0;
}

/**
 * The same lists with stages that sleep the threads run's measured costs (the processes run's where
 * threads were not timed): the executors' own overlap, apart from free cores. Collective.
 */
async function sleepingComparison(job: Job, setup: PipelineSetup, units: number, real: Comparison, B: number): Promise<Comparison> {
  const { schedule } = setup, W = schedule.workers.length, M = schedule.microbatches;
  const busy = await agreeOnRank0(real.threads.busy.length ? real.threads.busy : real.processes.busy, W);
  // Per stage: its worker's busy time over the worker's F and B actions (B = 2F; V: two stages each).
  const share = (k: number): number[] => schedule.stageToWorker.map((w) => (k * busy[w]) / (3 * M * (schedule.stages / W)));
  const tiny = sleepingStages(units, setup.balance, B, M, setup.seed ?? 0);
  return compare(job, { ...setup, model: tiny.spec, balance: tiny.balance, instrumentation: { syntheticCosts: { F: share(1), B: share(2), W: share(0) } } },
    tiny.batch);
}

/** Rank 0's line of a schedule: processes against threads (null where rank 0 cannot use W cores), and with sleeping stages. */
function emitLine(json: boolean | undefined, name: string, W: number, M: number, B: number, balance: number[], real: Comparison, synth: Comparison | null): void {
  const fair = Number.isFinite(real.threads.seconds);
  const ms = (s: number): number => Number((s * 1000).toFixed(1));
  // Per worker, *_busy_ms: ms inside actions in the fastest step (the rest of the step is waiting).
  const line = { schedule: name, workers: W, microbatches: M, batch: B, processes_samples_per_s: Number((B / real.processes.seconds).toFixed(1)),
    threads_samples_per_s: fair ? Number((B / real.threads.seconds).toFixed(1)) : null, ratio: fair ? Number((real.threads.seconds / real.processes.seconds).toFixed(3)) : null,
    balance, backend: getBackend().name, processes_busy_ms: real.processes.busy.map(ms), threads_busy_ms: real.threads.busy.map(ms),
    processes_step_ms: ms(real.processes.seconds), threads_step_ms: ms(real.threads.seconds),
    synthetic_ratio: fair && synth ? Number((synth.threads.seconds / synth.processes.seconds).toFixed(3)) : null };
  const vsThreads = line.ratio === null ? `${W} threads: not timed (rank 0 may use ${availableParallelism()} core(s); launch --bind none, or scripts/compare-executors)`
    : `${W} threads: ${line.threads_samples_per_s} samples/s; processes/threads ${(line.ratio * 100).toFixed(1)}%`;
  emit(json, line, `${name.padEnd(12)} ${W} processes: ${line.processes_samples_per_s} samples/s, ${vsThreads} ` +
    `(time in actions per worker: processes ${line.processes_busy_ms.join(",")} ms, threads ${line.threads_busy_ms.join(",") || "-"} ms); ` +
    `${line.synthetic_ratio !== null ? `with sleeping stages ${(line.synthetic_ratio * 100).toFixed(1)}%` : "no sleeping-stage comparison"}; balance ${balance.join(",")}`);
}

/** An executor's fastest step: seconds and per-worker busy seconds. */
interface Best { seconds: number; busy: number[] }
/** steps: every timed processes step, rank 0's wall seconds and (when recorded) every rank's timings. */
interface Comparison { processes: Best; threads: Best; steps: RecordedStep[] }

/** `n` steps of `ex` (none without one), each timed into `best`, then passed to `each`. */
async function timeSteps(ex: ProcessesExecutor | ThreadsExecutor | null, batch: SplitBatch, n: number, best: Best, each?: (seconds: number) => void): Promise<void> {
  for (let i = 0; i < n && ex; i++) {
    const t0 = performance.now();
    const res = await ex.step(batch);
    const t = (performance.now() - t0) / 1000;
    each?.(t);
    if (t < best.seconds) Object.assign(best, { seconds: t, busy: res.busy });
  }
}

/** Fastest step (and its per-worker busy seconds) of the processes executor and, on rank 0, of threads. */
async function compare({ g, timing, fair }: Job, setup: PipelineSetup, batch: SplitBatch): Promise<Comparison> {
  const state = createModel(setup.model!, setup.seed ?? 0).stateDict();
  const proc = await ProcessesExecutor.create(setup, { state });
  const threads = g.mpi.rank === 0 && fair ? await ThreadsExecutor.create(setup, state) : null;
  const out: Comparison = { processes: { seconds: Infinity, busy: [] }, threads: { seconds: Infinity, busy: [] }, steps: [] };
  const mine: (RankTimings | null)[] = [];
  try {
    await timeSteps(proc, batch, timing.warmup, { seconds: 0, busy: [] });
    await timeSteps(threads, batch, timing.warmup, { seconds: 0, busy: [] });
    await g.world.barrier();
    for (let r = 0; r < timing.rounds; r++) {
      await timeSteps(proc, batch, timing.steps, out.processes, (seconds) => {
        mine.push(proc.stepTimings()?.[0] ?? null);
        out.steps.push({ seconds, ranks: [] });
      });
      await timeSteps(threads, batch, timing.steps, out.threads);
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
