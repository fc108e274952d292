// `pipewright trace report`: what a measured trace says. Per worker (a trace process), the time of
// every step split into busy (inside actions), bubble (idle before the worker's first and after its
// last action of the step: the pipeline's fill and drain) and waiting (the rest of the idle time),
// as fractions of the steps' spans; and the critical path of one step: from the action that ends
// last, back through whichever predecessor finished last (the worker's previous action, or the
// message that fed it, then that message's send and the action that sent it). With replicas, a
// REDUCE waits for the stage's copies in the other replicas: its wait counts as waiting, and the
// path goes on from the replica that reached its REDUCE last.
import { readFileSync } from "node:fs";
import { generateSchedule, parseAction, virtualStage, type Schedule, type Timed } from "../pipeline/schedule/index.js";
import { TID, type TraceEvent, type TraceFile, type TraceSchedule } from "./chrome-trace.js";

export interface WorkerFractions {
  pid: number;
  name: string;
  busy: number;
  waiting: number;
  bubble: number;
  busy_ms: number;
  waiting_ms: number;
  bubble_ms: number;
}

export interface PathLink {
  kind: "action" | "send" | "receive";
  pid: number;
  /** The action ("1F3") or the message key. */
  what: string;
  start_ms: number;
  end_ms: number;
}

export interface TraceReport {
  file: string;
  process: "worker" | "rank";
  steps: number;
  /** Sum of the steps' spans (first action start to last action end of each step). */
  span_ms: number;
  workers: WorkerFractions[];
  /** The step whose critical path is given (the step of median span unless chosen). */
  critical_step: number;
  critical_step_ms: number;
  /** From the step's first link to its last action, times from the step's start. */
  critical_path: PathLink[];
}

/** A trace read back, checked enough that the report can rely on its shape. */
export function readTrace(file: string): TraceFile {
  let t: TraceFile;
  try {
    t = JSON.parse(readFileSync(file, "utf8")) as TraceFile;
  } catch (e) {
    throw new Error(`trace ${file}: not a JSON trace (${(e as Error).message})`);
  }
  if (!t || !Array.isArray(t.traceEvents) || t.metadata?.format !== "pipewright-trace" || !Array.isArray(t.metadata.steps)) {
    throw new Error(`trace ${file}: not a pipewright trace (no traceEvents, or no metadata.format "pipewright-trace"); write one with --trace FILE`);
  }
  return t;
}

/** The schedule of a trace segment: generateSchedule with the recorded options, or the recorded lists. */
export function scheduleOf(s: TraceSchedule): Schedule {
  if (s.weightGrads) {
    return generateSchedule(s.name, { stages: s.stages, microbatches: s.microbatches, chunks: s.chunks, steps: s.steps, weightGrads: s.weightGrads,
      stageToWorker: s.stageToWorker });
  }
  const workers = s.lists.map((l) => l.map(parseAction));
  return { name: s.name, stages: s.stages, microbatches: s.microbatches, chunks: s.chunks, steps: s.steps, stageToWorker: s.stageToWorker, workers,
    splitBackward: workers.some((l) => l.some((a) => a.kind === "W")), synchronous: s.name !== "async" };
}

const num = (e: TraceEvent, k: string): number => Number(e.args?.[k]);
const end = (e: TraceEvent): number => e.ts + (e.dur ?? 0);

/** Each step's compute and communication events, by pid, in time order. */
export function eventsByStep(t: TraceFile): Map<number, { compute: Map<number, TraceEvent[]>; comm: Map<number, TraceEvent[]> }> {
  const out = new Map<number, { compute: Map<number, TraceEvent[]>; comm: Map<number, TraceEvent[]> }>();
  for (const e of t.traceEvents) {
    if (e.ph !== "X" || e.args?.step === undefined) continue;
    const step = num(e, "step");
    let s = out.get(step);
    if (!s) out.set(step, s = { compute: new Map(), comm: new Map() });
    const m = e.tid === TID.compute ? s.compute : s.comm;
    const l = m.get(e.pid) ?? [];
    l.push(e);
    m.set(e.pid, l);
  }
  for (const s of out.values()) for (const m of [s.compute, s.comm]) for (const l of m.values()) l.sort((a, b) => a.ts - b.ts);
  return out;
}

/**
 * Per REDUCE of a step (key "stage:step"), the replica's copy that started last: the gradients are
 * summed only once every replica has reached it.
 */
function lastReduces(compute: Map<number, TraceEvent[]>): Map<string, TraceEvent> {
  const out = new Map<string, TraceEvent>();
  for (const l of compute.values()) {
    for (const e of l) {
      if (e.name !== "REDUCE") continue;
      const k = `${num(e, "stage")}:${num(e, "microbatch")}`, x = out.get(k);
      if (!x || e.ts > x.ts) out.set(k, e);
    }
  }
  return out;
}

/** The time an action waited for the other replicas (a REDUCE before the last one arrived), else 0. */
function replicaWait(e: TraceEvent, last: Map<string, TraceEvent>): number {
  const x = e.name === "REDUCE" ? last.get(`${num(e, "stage")}:${num(e, "microbatch")}`) : undefined;
  return x ? Math.min(e.dur ?? 0, Math.max(0, x.ts - e.ts)) : 0;
}

/** Busy, waiting and bubble fractions per process, over every step of the trace. */
export function fractions(t: TraceFile): { workers: WorkerFractions[]; span_us: number } {
  const names = new Map<number, string>();
  for (const e of t.traceEvents) if (e.ph === "M" && e.name === "process_name") names.set(e.pid, String(e.args?.name ?? e.pid));
  const acc = new Map<number, { busy: number; bubble: number; waiting: number }>();
  for (const pid of names.keys()) acc.set(pid, { busy: 0, bubble: 0, waiting: 0 });
  let span = 0;
  for (const s of eventsByStep(t).values()) {
    const all = [...s.compute.values()].flat();
    if (all.length === 0) continue;
    const b = Math.min(...all.map((e) => e.ts)), f = Math.max(...all.map(end));
    span += f - b;
    const last = lastReduces(s.compute);
    for (const [pid, a] of acc) {
      const list = s.compute.get(pid) ?? [];
      if (list.length === 0) { a.bubble += f - b; continue; }
      const busy = list.reduce((x, e) => x + (e.dur ?? 0) - replicaWait(e, last), 0);
      const bubble = (list[0].ts - b) + (f - Math.max(...list.map(end)));
      a.busy += busy;
      a.bubble += bubble;
      a.waiting += Math.max(0, f - b - busy - bubble);
    }
  }
  const workers = [...acc].sort(([x], [y]) => x - y).map(([pid, a]) => {
    const total = a.busy + a.bubble + a.waiting || 1;
    return { pid, name: names.get(pid) ?? String(pid), busy: a.busy / total, waiting: a.waiting / total, bubble: a.bubble / total,
      busy_ms: a.busy / 1000, waiting_ms: a.waiting / 1000, bubble_ms: a.bubble / 1000 };
  });
  return { workers, span_us: span };
}

/** The message key an action consumes from another worker, or null (message keys: interpreter.ts messageKey). */
function fedBy(e: TraceEvent, s: TraceSchedule): string | null {
  const vs = virtualStage(num(e, "stage"), num(e, "chunk"), s.stages), last = s.stages * s.chunks - 1, mb = num(e, "microbatch");
  if (e.name === "F" && vs > 0) return `a${vs}:${mb}`;
  if (e.name === "B" && vs < last) return `g${vs}:${mb}`;
  return null;
}

/**
 * The critical path of one step: from its last-ending action back through the predecessor that
 * finished last (previous action of the worker, or the receive of the message it consumed, that
 * message's send, and the action it was sent from; for a REDUCE, the replica's copy of it that
 * started last, then that replica's previous action).
 */
export function criticalPath(t: TraceFile, step: number): PathLink[] {
  const s = eventsByStep(t).get(step);
  if (!s) throw new Error(`the trace has no step ${step}`);
  const info = t.metadata.steps.find((x) => x.step === step);
  const sched = t.metadata.segments[info?.segment ?? 0]?.schedule ?? t.metadata.schedule;
  const compute = [...s.compute.values()].flat();
  const comm = [...s.comm.values()].flat();
  const t0 = Math.min(...compute.map((e) => e.ts));
  const link = (kind: PathLink["kind"], e: TraceEvent, what: string): PathLink => ({ kind, pid: e.pid, what, start_ms: (e.ts - t0) / 1000, end_ms: (end(e) - t0) / 1000 });
  const path: PathLink[] = [];
  let a: TraceEvent | undefined = compute.reduce((x, e) => (end(e) > end(x) ? e : x));
  const seen = new Set<TraceEvent>();
  const lastReduce = lastReduces(s.compute);
  while (a && !seen.has(a)) {
    seen.add(a);
    path.push(link("action", a, String(a.args?.action ?? a.name)));
    // Replicas: the REDUCE ended once the last replica reached it; the path goes on from there.
    const cur: TraceEvent = a;
    const gate = cur.name === "REDUCE" ? lastReduce.get(`${num(cur, "stage")}:${num(cur, "microbatch")}`) : undefined;
    if (gate && gate !== cur && gate.ts > cur.ts) { a = gate; continue; }
    const mine: TraceEvent[] = s.compute.get(cur.pid)!;
    const prev = mine[mine.indexOf(cur) - 1];
    const key = fedBy(cur, sched);
    const recv = key ? (s.comm.get(cur.pid) ?? []).find((e) => e.name === "receive" && e.args?.key === key) : undefined;
    const msgEnd = recv ? end(recv) : -Infinity, prevEnd = prev ? end(prev) : -Infinity;
    // A message taken in after the worker's previous action was usually there earlier: it decided
    // the start only if it was sent after that action ended (the receive is logged when handled).
    const send = recv ? comm.find((e) => e.name === "send" && e.args?.key === key && e.pid !== cur.pid) : undefined;
    const ready = send ? end(send) : msgEnd;
    if (recv && ready >= prevEnd) {
      path.push(link("receive", recv, key!));
      if (!send) break;
      path.push(link("send", send, key!));
      // The action the message was sent from (a send happens inside the action that produced it).
      const from = s.compute.get(send.pid) ?? [];
      a = from.find((e) => e.ts <= send.ts && send.ts <= end(e)) ?? from.filter((e) => end(e) <= send.ts).pop();
      continue;
    }
    a = prev;
  }
  return path.reverse();
}

/** The report of a trace; `step`: whose critical path (default: the step of median span). */
export function traceReport(t: TraceFile, file: string, step?: number): TraceReport {
  const { workers, span_us } = fractions(t);
  const spans = t.metadata.steps.filter((x) => Number.isFinite(x.begin_us)).map((x) => ({ step: x.step, span: x.end_us - x.begin_us }));
  if (spans.length === 0) throw new Error(`trace ${file}: no step holds an action`);
  const chosen = step ?? [...spans].sort((a, b) => a.span - b.span)[spans.length >> 1].step;
  const info = spans.find((x) => x.step === chosen);
  if (!info) throw new Error(`trace ${file} has steps 0..${t.metadata.steps.length - 1}; there is no step ${chosen}`);
  return { file, process: t.metadata.process, steps: spans.length, span_ms: span_us / 1000, workers, critical_step: chosen,
    critical_step_ms: info.span / 1000, critical_path: criticalPath(t, chosen) };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`.padStart(6);

export function formatReport(r: TraceReport, names: ReadonlyMap<number, string>): string {
  const w = Math.max(8, ...r.workers.map((x) => x.name.length));
  const lines = [`${r.file}: ${r.steps} step(s), ${r.span_ms.toFixed(2)} ms in steps`, "",
    `${"".padEnd(w)}    busy waiting  bubble`];
  for (const x of r.workers) lines.push(`${x.name.padEnd(w)}  ${pct(x.busy)}  ${pct(x.waiting)}  ${pct(x.bubble)}`);
  lines.push("", `critical path of step ${r.critical_step} (${r.critical_step_ms.toFixed(3)} ms; times from the step's start, ms):`);
  for (const l of r.critical_path) {
    const who = names.get(l.pid) ?? String(l.pid);
    const what = l.kind === "action" ? l.what : `${l.kind} ${l.what}`;
    lines.push(`  ${l.start_ms.toFixed(3).padStart(9)} - ${l.end_ms.toFixed(3).padStart(9)}  ${who}: ${what}`);
  }
  return lines.join("\n");
}

/** The measured timeline of one step in the simulator's shape: per worker its actions, ms from the step's start. */
export function measuredTimeline(t: TraceFile, step: number, workers: number): { timeline: Timed[][]; makespan: number; busy: number[] } {
  const s = eventsByStep(t).get(step);
  if (!s) throw new Error(`the trace has no step ${step}`);
  const all = [...s.compute.values()].flat();
  const t0 = Math.min(...all.map((e) => e.ts));
  const timeline: Timed[][] = Array.from({ length: workers }, () => []);
  const workerOf = new Map<number, number>();
  for (const e of t.traceEvents) {
    if (e.ph === "M" && e.name === "process_name") {
      const m = /^(?:worker (\d+)|rank \d+(?: \(worker (\d+), replica 0\))?)$/.exec(String(e.args?.name));
      if (m) workerOf.set(e.pid, Number(m[1] ?? m[2] ?? e.pid));
    }
  }
  for (const [pid, list] of s.compute) {
    const w = workerOf.get(pid);
    if (w === undefined || w >= workers) continue; // other replicas: replica 0 stands for them
    for (const e of list) timeline[w].push({ action: parseAction(String(e.args?.action)), worker: w, start: (e.ts - t0) / 1000, end: (end(e) - t0) / 1000 });
  }
  const makespan = Math.max(0, ...all.map((e) => (end(e) - t0) / 1000));
  return { timeline, makespan, busy: timeline.map((l) => l.reduce((x, a) => x + a.end - a.start, 0)) };
}
