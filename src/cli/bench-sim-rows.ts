// The `sim:` rows of `bench pipeline --executor processes`: the simulator, fed with the costs the
// processes executor itself recorded in each timed step (CPU time per action, message times, the
// ranks' start skew, the end-of-step exchange, the other load on the cores), predicts that step; the
// rows compare the median prediction with the median measured step of the same run. Then the same
// per-layer costs, cut into 8 and 16 stages, predict 8 and 16 ranks with one core each (not measured).
import { loadavg } from "node:os";
import { balanceByCost } from "../pipeline/partition.js";
import { execute, generateSchedule, isVSchedule, type Schedule, type WeightGradMode } from "../pipeline/schedule/index.js";
import type { RankTimings } from "../pipeline/runtime/action-records.js";
import { measuredStep, readyMessageHolds, replayCosts, simulate, type CostModel, type MeasuredStep } from "../sim/index.js";
import { median, roundTo } from "../util/stats.js";

/** One timed step of the processes executor with every rank's records (ranks in worker order). */
export interface RecordedStep { seconds: number; ranks: RankTimings[] }

export interface SimInputs {
  name: string; schedule: Schedule; steps: readonly RecordedStep[];
  /** Cores of the machine; per-byte message time and bytes per message (ping-pong); the ping-pong latency (s). */
  cores: number; perByte: number; messageBytes: number; pingPong: number; cpu: string;
  /** Every rank bound to a core of its own (other load then slows each rank by its own factor). */
  pinned: boolean;
}

/** The step time the simulator predicts from one step's measured costs. */
function predictStep(s: Schedule, m: MeasuredStep): number {
  return simulate(s, m.costs).makespan + m.exchange;
}

/** The `sim` row of a run with its text line, and every timed step's measured costs. */
export function simRow(i: SimInputs): { row: object; text: string; measured: MeasuredStep[] } {
  const measured = i.steps.map((st) => measuredStep(i.schedule, st.ranks, { cores: i.cores, perByte: i.perByte, messageBytes: i.messageBytes, pinned: i.pinned }));
  const predicted = measured.map((m) => predictStep(i.schedule, m));
  const W = i.schedule.workers.length;
  const alone = measured.map((m) => predictStep(i.schedule, { ...m, costs: { ...m.costs, cores: W, background: 0, slowdown: undefined } }));
  const fixed = Math.max(0, i.pingPong - i.perByte * i.messageBytes);
  const pinged = measured.map((m) => predictStep(i.schedule, { ...m, costs: { ...m.costs, message: fixed, senderSlice: 0 } }));
  const replayed = i.steps.map((st, k) => {
    const run = execute(i.schedule, replayCosts(i.schedule, st.ranks));
    return Math.max(0, ...run.timeline.map((row) => (row.length ? row[row.length - 1].end : 0))) + measured[k].exchange;
  });
  const seconds = i.steps.map((st) => st.seconds);
  const holds = i.steps.flatMap((st) => readyMessageHolds(st.ranks));
  const med = (f: (m: MeasuredStep) => number): number => median(measured.map(f));
  const r = {
    bench: "sim", schedule: i.name, ranks: i.schedule.workers.length, microbatches: i.schedule.microbatches,
    // Medians over the timed steps (the prediction and the measurement of each step are paired).
    predicted_step_ms: roundTo(median(predicted) * 1e3, 1), measured_step_ms: roundTo(median(seconds) * 1e3, 1),
    error: Number((median(predicted) / median(seconds) - 1).toFixed(3)),
    error_per_step_median: Number(median(predicted.map((p, k) => p / seconds[k] - 1)).toFixed(3)),
    message_us: roundTo(med((m) => (m.costs.message ?? 0) + i.perByte * i.messageBytes) * 1e6, 1),
    measured_best_step_ms: roundTo(Math.min(...seconds) * 1e3, 1), steps: seconds.length, cores: i.cores,
    background: Number(med((m) => m.costs.background ?? 0).toFixed(2)), pinned: i.pinned,
    rank_slowdown: i.pinned ? Array.from({ length: W }, (_, w) => Number(med((m) => m.costs.slowdown?.[w] ?? 1).toFixed(2))) : null,
    sender_slice_us: roundTo(med((m) => m.costs.senderSlice ?? 0) * 1e6, 1), receive_us: roundTo(med((m) => m.costs.receive ?? 0) * 1e6, 1),
    exchange_us: roundTo(med((m) => m.exchange) * 1e6, 1), hold_us: roundTo(median(holds) * 1e6, 1), hold_messages: holds.length, action_slowdown: Number(med((m) => m.slowdown).toFixed(2)),
    ping_pong_us: roundTo(i.pingPong * 1e6, 1), loadavg: loadavg().map((x) => Number(x.toFixed(2))), cpu: i.cpu,
    predicted_one_core_per_rank_ms: roundTo(median(alone) * 1e3, 1), predicted_ping_pong_latency_ms: roundTo(median(pinged) * 1e3, 1),
    replayed_step_ms: roundTo(median(replayed) * 1e3, 1), replay_error: Number((median(replayed) / median(seconds) - 1).toFixed(3)),
  };
  const text = `${r.schedule.padEnd(12)} sim: ${r.predicted_step_ms} ms predicted for ${r.ranks} ranks on ${r.cores} cores, ${r.measured_step_ms} ms measured ` +
    `(${(r.error * 100).toFixed(1)}%; medians of ${r.steps} steps, each predicted from its own records (per step: median error ${(r.error_per_step_median * 100).toFixed(1)}%): message ${r.message_us} µs, ` +
    `held by a busy sender ${r.sender_slice_us} µs, a ready message to a waiting receiver ${r.hold_us} µs (median of ${r.hold_messages}), other load ${r.rank_slowdown ? `x${r.rank_slowdown.join(",")} per pinned rank` : `${r.background} on the shared cores`}, actions slowed x${r.action_slowdown}; ping-pong ${r.ping_pong_us} µs; load ${r.loadavg.join(" ")}); ` +
    `with one core per rank ${r.predicted_one_core_per_rank_ms} ms, with ping-pong messages ${r.predicted_ping_pong_latency_ms} ms; ` +
    `every action and message at its own measured time ${r.replayed_step_ms} ms (${(r.replay_error * 100).toFixed(1)}%)`;
  return { row: r, text, measured };
}

/** Per unit (layer): `cost(vs, share)` of its measured stage vs, share = the unit's part of the stage's profiled time. */
function perUnit(balance: readonly number[], unitTimes: readonly number[], cost: (vs: number, share: number) => number): number[] {
  let u = 0;
  return balance.flatMap((n, vs) => {
    const units = unitTimes.slice(u, (u += n)), total = units.reduce((a, b) => a + b, 0);
    return units.map((t) => cost(vs, total > 0 ? t / total : 1 / n));
  });
}

const sumRange = (xs: number[], from: number, n: number): number => xs.slice(from, from + n).reduce((a, b) => a + b, 0);

/**
 * The measured step's costs on a pipeline of `stages` stages (v chunks each, cut by the same profiled
 * unit times) on `ranks` ranks (two stages each in a V), one core per rank and no other load: the
 * message latency of the ping-pong (the one inside a step grows with other load on the machine), the
 * sender slice, receive cost and exchange measured in the step.
 */
function scaledCosts(m: MeasuredStep, measuredBalance: readonly number[], unitTimes: readonly number[], S: number, stages: number, v: number,
  pingPongFixed: number, ranks = stages): CostModel {
  const c = m.costs, balance = balanceByCost(unitTimes, stages * v);
  const arr = (x: CostModel["forward"] | undefined, k: number): number => (typeof x === "number" ? x : x?.[k] ?? 0);
  // Per new stage, the sum of its units' shares of the measured costs.
  const per = (cost: (vs: number, share: number) => number): number[] => {
    const xs = perUnit(measuredBalance, unitTimes, cost);
    let at = 0;
    return balance.map((n) => { const t = sumRange(xs, at, n); at += n; return t; });
  };
  const split = (x: CostModel["forward"]): number[] => per((vs, sh) => arr(x, vs) * sh);
  // A stage's STEP is split over its chunks' units (every chunk shares the stage's optimizer).
  const step = per((vs, sh) => (arr(c.step, vs % S) * sh) / (measuredBalance.length / S));
  return {
    forward: split(c.forward), backward: split(c.backward), weight: split(c.weight),
    step: Array.from({ length: stages }, (_, s) => step.filter((_, vs) => vs % stages === s).reduce((a, b) => a + b, 0)),
    message: pingPongFixed, messagePerByte: m.costs.messagePerByte, messageBytes: m.costs.messageBytes, receive: m.costs.receive,
    senderSlice: m.costs.senderSlice, cores: ranks,
  };
}

const PREDICTION_ASSUMPTIONS = "one core per rank, no other load; per-layer CPU costs from this run's actions (split by profiled layer times); " +
  "messages as measured here over shared memory on one host (ping-pong latency and per-byte time; from this run's steps: the time a busy sender holds a message, " +
  "the receiver's CPU per message, the end-of-step exchange)";

/** Predictions for more ranks (the model cut into 8 and 16 stages), median over the measured steps; each row with its text line. */
export function predictionRows(i: SimInputs, measured: readonly MeasuredStep[], balance: readonly number[], unitTimes: readonly number[],
  batch: number, weightGrads: WeightGradMode): { row: object; text: string }[] {
  const v = i.schedule.chunks, M = i.schedule.microbatches;
  return [8, 16].flatMap((ranks) => {
    // A V schedule runs two stages on each rank.
    const stages = isVSchedule(i.name) ? 2 * ranks : ranks;
    if (unitTimes.length < stages * v || (i.name === "interleaved" && M % ranks !== 0) || (i.name === "dualpipev" && M < stages)) return [];
    const s = generateSchedule(i.name, { stages, microbatches: M, chunks: v, weightGrads });
    const fixed = Math.max(0, i.pingPong - i.perByte * i.messageBytes);
    const t = median(measured.map((m) => simulate(s, scaledCosts(m, balance, unitTimes, i.schedule.stages, stages, v, fixed, ranks)).makespan + m.exchange));
    const p = { bench: "sim", schedule: i.name, ranks, microbatches: M, batch, predicted_step_ms: roundTo(t * 1e3, 1), predicted_samples_per_s: roundTo(batch / t, 1),
      prediction: true, from_ranks: i.schedule.workers.length, assumptions: PREDICTION_ASSUMPTIONS };
    return [{ row: p, text: `${p.schedule.padEnd(12)} sim: ${p.predicted_step_ms} ms per step, ${p.predicted_samples_per_s} samples/s predicted for ${p.ranks} ranks, ` +
    `M = ${p.microbatches} (a prediction, not measured: from the ${p.from_ranks}-rank run; ${p.assumptions})` }];
  });
}
