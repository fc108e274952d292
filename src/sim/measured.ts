// The simulator's cost model measured from one step of the processes executor itself (its per-action
// and per-message records, instrumentation.recordActions): the CPU time of every action kind per
// virtual stage, the time between a sender's action end and the receiver taking the message in,
// the receiver's CPU per message, the start skew of the ranks and the end-of-step exchange, and how
// much other load shared the cores. Times in the records are ms since the epoch; costs in seconds.
import type { ActionRecord, RankTimings } from "../pipeline/runtime/action-records.js";
import { actionKey, actionParts, isStepKind, virtualStage, type Action, type ExecutionCosts, type Schedule } from "../pipeline/schedule/index.js";
import type { CostModel } from "./cost-model.js";
import { shareRate } from "./shared-cores.js";
import { mean, median } from "../util/stats.js";

export interface MeasuredStep {
  /** The simulator's cost model of this step (cores and background as given and fitted). */
  costs: CostModel;
  /** Idle-receiver message times (s): the latency is the mean of `latency`, the sender slice the mean of `held` minus it. */
  messageSamples: MessageSamples;
  /** Seconds from the last rank finishing its list to rank 0 leaving the step (the end-of-step exchange). */
  exchange: number;
  /** Wall / CPU time over every action (1: no action was slowed by sharing a core). */
  slowdown: number;
}

export interface MeasureOptions {
  cores: number;
  /** Seconds per byte of a message (from a ping-pong at two sizes); 0 leaves all in the fixed part. */
  perByte: number;
  /** Bytes per message across each virtual-stage boundary (one number: every boundary). */
  messageBytes: number;
  /**
   * Each rank was bound to a core of its own (launch binds unless there are more ranks than cores):
   * other load then slows each rank by its own factor (`slowdown`), not the shared pool (`background`).
   */
  pinned?: boolean;
}

const ms = 1e-3;
const cpuSeconds = (r: ActionRecord): number => r.cpu * 1e-6;

/**
 * Per virtual stage: forward, full backward (B + W), weight, and per stage the STEP, each the mean
 * CPU time over its micro-batches: the mean keeps a step's total work (a first forward after STEP
 * makes the weights' layout copies; a stacked W pass covers several micro-batches). A REDUCE (the
 * replicas' gradient all-reduce) costs its wall time: most of it is communication, not CPU.
 */
function actionCosts(s: Schedule, ranks: readonly RankTimings[]): Pick<CostModel, "forward" | "backward" | "weight" | "step" | "reduce"> {
  const V = s.stages * s.chunks;
  const per = (kind: ActionRecord["kind"]): number[][] => Array.from({ length: isStepKind(kind) ? s.stages : V }, () => []);
  const F = per("F"), B = per("B"), Wt = per("W"), STEP = per("STEP"), REDUCE = per("REDUCE");
  for (const r of ranks.flatMap((x) => x.actions)) {
    const vs = virtualStage(r.stage, r.chunk, s.stages);
    if (r.kind === "F") F[vs].push(cpuSeconds(r));
    else if (r.kind === "B") B[vs].push(cpuSeconds(r));
    // A stacked run of W's costs what it costs: its share per micro-batch, as often as it covers.
    else if (r.kind === "W") for (let i = 0; i < r.run; i++) Wt[vs].push(cpuSeconds(r) / r.run);
    else if (r.kind === "REDUCE") REDUCE[r.stage].push((r.end - r.start) * ms);
    else STEP[r.stage].push(cpuSeconds(r));
  }
  const m = (xs: number[][]): number[] => xs.map((x) => (x.length ? x.reduce((a, b) => a + b, 0) / x.length : 0));
  const weight = m(Wt), b = m(B);
  return { forward: m(F), backward: b.map((x, i) => (s.splitBackward ? x + weight[i] : x)), weight: s.splitBackward ? weight : b.map(() => 0), step: m(STEP), reduce: m(REDUCE) };
}

/** Message times (s): `latency` from the sender being free to the receiver taking the message in; `held` from the send to arrival while the sender kept computing. */
export interface MessageSamples { latency: number[]; held: number[] }

/** Where the sender's run of back-to-back actions that contains time t ends (t itself when it was not in an action). */
function freeAfter(actions: readonly ActionRecord[], t: number): { producerEnd: number; free: number } {
  const i = actions.findIndex((a) => a.start <= t && t <= a.end);
  if (i < 0) return { producerEnd: t, free: t };
  let free = actions[i].end;
  for (let j = i + 1; j < actions.length && actions[j].start - free < 0.1; j++) free = actions[j].end;
  return { producerEnd: actions[i].end, free };
}

/**
 * Messages that found the receiver idle (not inside an action): one taken in during an action waits
 * for it (and the actions the pump runs after it), which the simulator models itself. A message that
 * arrived after its sender stopped computing gives a latency sample (from then); one that arrived
 * while the sender still computed gives a `held` sample (from its producing action's end).
 */
function messageTimes(ranks: readonly RankTimings[]): MessageSamples {
  const sent = new Map<string, { at: number; rank: number }>();
  ranks.forEach((r, i) => { for (const m of r.sends) sent.set(m.key, { at: m.at + m.ms, rank: i }); });
  const out: MessageSamples = { latency: [], held: [] };
  for (const r of ranks) {
    for (const m of r.receives) {
      const from = sent.get(m.key);
      const busy = r.actions.some((a) => a.start < m.at && m.at <= a.end + 0.3);
      if (!from || busy) continue;
      const { producerEnd, free } = freeAfter(ranks[from.rank].actions, from.at);
      if (m.at >= free) out.latency.push((m.at - free) * ms);
      else out.held.push((m.at - producerEnd) * ms);
    }
  }
  return out;
}

/**
 * How long each message that found its receiver waiting took, from the end of the send call (the
 * message handed to MPI) to the receiver taking it in (s): the delay a bound rank's communication
 * adds to a ready message. A receiver inside an action during that time would not have taken it
 * in anyway, so those messages are left out.
 */
export function readyMessageHolds(ranks: readonly RankTimings[]): number[] {
  const sent = new Map<string, number>();
  for (const r of ranks) for (const m of r.sends) sent.set(m.key, m.at + m.ms);
  const out: number[] = [];
  for (const r of ranks) {
    for (const m of r.receives) {
      const from = sent.get(m.key);
      if (from === undefined || m.at < from) continue;
      if (r.actions.some((a) => a.start < m.at && a.end > from)) continue;
      out.push((m.at - from) * ms);
    }
  }
  return out;
}

/**
 * Per action: wall time from when its rank could start it (the previous action's end, or a message
 * taken in after it) to its end. A ready rank that the scheduler kept off the cores shows up in
 * this gap before the action, not in the action's own time, so sharing is measured over both.
 */
function readySpans(r: RankTimings): { start: number; end: number; cpu: number }[] {
  const taken = r.receives.map((m) => m.at + m.ms).sort((x, y) => x - y);
  let prev = r.begin;
  return r.actions.map((a) => {
    let ready = prev;
    for (const t of taken) if (t > ready && t <= a.start) ready = t;
    prev = a.end;
    return { start: Math.min(ready, a.start), end: a.end, cpu: a.cpu / 1000 };
  });
}

/** Time-weighted number of other ranks inside an action during [a.start, a.end]. */
function concurrency(a: { start: number; end: number }, others: readonly ActionRecord[]): number {
  const span = a.end - a.start;
  if (span <= 0) return 0;
  let overlap = 0;
  for (const o of others) overlap += Math.max(0, Math.min(a.end, o.end) - Math.max(a.start, o.start));
  return overlap / span;
}

/**
 * Other runnable load on the cores, fitted so that the sharing model slows the actions as much as
 * measured: sum over actions of (ready-to-end wall time) = sum of cpu / rate(1 + concurrent ranks +
 * background). 0 when the actions ran at their CPU time as soon as they could.
 */
export function fitBackground(ranks: readonly RankTimings[], cores: number): number {
  const items = ranks.flatMap((r, i) => {
    const others = ranks.filter((_, j) => j !== i).flatMap((x) => x.actions);
    return readySpans(r).map((a) => ({ wall: a.end - a.start, cpu: a.cpu, n: 1 + concurrency(a, others) }));
  });
  const wall = items.reduce((t, x) => t + x.wall, 0);
  const model = (bg: number): number => items.reduce((t, x) => t + x.cpu / shareRate(x.n, { cores, background: bg }), 0);
  if (model(0) >= wall) return 0;
  let lo = 0, hi = 64;
  if (model(hi) < wall) return hi;
  for (let i = 0; i < 50; i++) { const mid = (lo + hi) / 2; if (model(mid) < wall) lo = mid; else hi = mid; }
  return (lo + hi) / 2;
}

/** Per rank pinned to its own core: ready-to-end wall time of its actions over their CPU time (>= 1). */
export function fitSlowdowns(ranks: readonly RankTimings[]): number[] {
  return ranks.map((r) => {
    const spans = readySpans(r);
    const wall = spans.reduce((t, a) => t + a.end - a.start, 0), cpu = spans.reduce((t, a) => t + a.cpu, 0);
    return cpu > 0 ? Math.max(1, wall / cpu) : 1;
  });
}

/** The cost model of one recorded step of `s` (ranks in worker order). */
export function measuredStep(s: Schedule, ranks: readonly RankTimings[], o: MeasureOptions): MeasuredStep {
  if (ranks.length !== s.workers.length) throw new Error(`measured step: ${ranks.length} rank records for ${s.workers.length} workers`);
  const samples = messageTimes(ranks);
  // Means, not medians: a step's critical path crosses many messages, so what it pays is their sum,
  // and the delays are heavy-tailed on a shared machine (a preempted communication thread).
  const latency = samples.latency.length ? mean(samples.latency) : 0;
  // One held message is no estimate (a single long preemption of the sender would set it).
  const slice = samples.held.length >= 2 ? Math.max(0, mean(samples.held) - latency) : 0;
  const t0 = ranks[0].begin;
  const receives = ranks.flatMap((r) => r.receives.map((m) => m.ms * ms));
  const all = ranks.flatMap((r) => r.actions);
  const costs: CostModel = {
    ...actionCosts(s, ranks),
    message: Math.max(0, latency - o.perByte * o.messageBytes),
    messagePerByte: o.perByte,
    messageBytes: o.messageBytes,
    receive: receives.length ? median(receives) : 0,
    cores: o.cores,
    ...(o.pinned ? { background: 0, slowdown: fitSlowdowns(ranks) } : { background: fitBackground(ranks, o.cores) }),
    start: ranks.map((r) => Math.max(0, r.begin - t0) * ms),
    senderSlice: slice,
  };
  const wall = all.reduce((t, a) => t + a.end - a.start, 0), cpu = all.reduce((t, a) => t + a.cpu / 1000, 0);
  return { costs, messageSamples: samples, exchange: Math.max(0, ranks[0].end - Math.max(...ranks.map((r) => r.listDone))) * ms, slowdown: cpu > 0 ? wall / cpu : 1 };
}

/**
 * The step replayed with every action's and every message's own measured time (wall, from its
 * records): no means, no sharing model. What it misses of the measured step is what the simulator's
 * structure (list order, dependencies, messages, the exchange) misses; the rest of a prediction's
 * error comes from replacing the individual times by the cost model.
 */
export function replayCosts(s: Schedule, ranks: readonly RankTimings[]): ExecutionCosts {
  const own = new Map<string, number>();
  ranks.forEach((r, w) => {
    // Records are of simple actions: an FB's F and B records add up to the pair's time.
    const list = s.workers[w].flatMap((a) => actionParts(a).map(() => actionKey(a)));
    let at = 0;
    for (const rec of r.actions) {
      // A stacked W record covers `run` list entries; each takes its share.
      for (let i = 0; i < rec.run && at < list.length; i++, at++) own.set(list[at], (own.get(list[at]) ?? 0) + ((rec.end - rec.start) / rec.run) * ms);
    }
  });
  const sent = new Map<string, number>(), taken = new Map<string, number>();
  for (const r of ranks) {
    for (const m of r.sends) sent.set(m.key, m.at + m.ms);
    for (const m of r.receives) taken.set(m.key, m.at + m.ms);
  }
  // A message is named after the virtual stage that consumes it (interpreter messageKey).
  const key = (d: Action, a: Action): string => `${d.kind === "F" ? "a" : "g"}${virtualStage(a.stage, a.chunk, s.stages)}:${a.microbatch}`;
  return {
    duration: (a) => own.get(actionKey(a)) ?? 0,
    message: (d, a) => {
      const k = key(d, a), t0 = sent.get(k), t1 = taken.get(k);
      return t0 !== undefined && t1 !== undefined ? Math.max(0, t1 - t0) * ms : 0;
    },
  };
}
