// Chrome Trace Event JSON (the object form Perfetto and chrome://tracing open) from the executors'
// timing records: one process per pipeline worker or MPI rank, two threads in each (compute: the
// F/B/W/STEP actions; communication: sends, receives and all-reduces), complete events ("X") in
// microseconds since the trace's origin. Ranks' times are moved onto rank 0's clock by the offsets
// measured when the executor started, so a message's receive follows its send on one axis.
import type { ActionRecord, ClockSync, MessageRecord, RankTimings } from "../pipeline/runtime/action-records.js";
import { formatAction, generateSchedule, type Action, type Schedule, type WeightGradMode } from "../pipeline/schedule/index.js";

/** Thread ids of every process: actions on one track, messages on another. */
export const TID = { compute: 1, comm: 2 } as const;

export type TraceEventArgs = Record<string, string | number | boolean | null>;

/** One Trace Event Format event: "X" complete (with dur), "M" metadata (names of processes and threads). */
export interface TraceEvent {
  name: string;
  ph: "X" | "M";
  /** Microseconds since the trace's origin. */
  ts: number;
  pid: number;
  tid: number;
  cat?: string;
  dur?: number;
  args?: TraceEventArgs;
}

/** How to rebuild a trace's schedule with generateSchedule (lists: the workers' action lists as text, to check it). */
export interface TraceSchedule {
  name: string;
  stages: number;
  microbatches: number;
  chunks: number;
  steps: number;
  /** Which generateSchedule option reproduces the lists; null when none does (a hand-made layout). */
  weightGrads: WeightGradMode | null;
  stageToWorker: number[];
  lists: string[][];
}

/** A run of steps on one executor (a run that changes executor, e.g. after a warm-up, has several). */
export interface TraceSegment {
  executor: string;
  schedule: TraceSchedule;
  /** Index of the segment's first step in the trace. */
  firstStep: number;
  steps: number;
  /** processes: every rank's clock against rank 0's (ms), measured at the executor's start. */
  clock: { rank: number; offset_ms: number; rtt_ms: number; rounds: number }[] | null;
}

export interface TraceStepInfo { step: number; segment: number; begin_us: number; end_us: number }

export interface TraceMetadata {
  format: "pipewright-trace";
  version: 1;
  /** What a process is: a pipeline worker (threads, inline) or an MPI rank (processes). */
  process: "worker" | "rank";
  /** Epoch ms of ts = 0 (rank 0's clock). */
  origin_ms: number;
  /** The first segment's schedule (most traces have one). */
  schedule: TraceSchedule;
  segments: TraceSegment[];
  steps: TraceStepInfo[];
}

export interface TraceFile {
  traceEvents: TraceEvent[];
  displayTimeUnit: "ms";
  metadata: TraceMetadata;
}

/** The schedule as the trace records it: the options that regenerate its lists, and the lists. */
export function traceSchedule(s: Schedule): TraceSchedule {
  const lists = s.workers.map((l) => l.map(formatAction));
  const same = (o: Schedule): boolean => JSON.stringify(o.workers.map((l) => l.map(formatAction))) === JSON.stringify(lists);
  let weightGrads: WeightGradMode | null = null;
  for (const mode of ["microbatch", "step"] as const) {
    try {
      if (same(generateSchedule(s.name, { stages: s.stages, microbatches: s.microbatches, chunks: s.chunks, steps: s.steps, weightGrads: mode,
        stageToWorker: s.stageToWorker }))) { weightGrads = mode; break; }
    } catch { /* a name generateSchedule does not know: the lists stand alone */ }
  }
  return { name: s.name, stages: s.stages, microbatches: s.microbatches, chunks: s.chunks, steps: s.steps, weightGrads,
    stageToWorker: [...s.stageToWorker], lists };
}

/** What a message key names: `a{v}:{mb}` the input activation of virtual stage v, `g{v}:{mb}` the gradient of v's output. */
export function parseMessageKey(key: string): { what: "activation" | "gradient"; stage: number; microbatch: number } | null {
  const m = /^([ag])(\d+):(\d+)$/.exec(key);
  return m ? { what: m[1] === "a" ? "activation" : "gradient", stage: Number(m[2]), microbatch: Number(m[3]) } : null;
}

const us = (ms: number): number => Math.round(ms * 1000 * 1000) / 1000; // µs, to the nanosecond

/** The process name of a record: "worker w" (with its replica past the first), or "rank r" (with its worker and replica when they differ). */
export function processName(r: RankTimings, process: "worker" | "rank"): string {
  if (process === "worker") return r.replica ? `worker ${r.worker ?? r.rank} (replica ${r.replica})` : `worker ${r.worker ?? r.rank}`;
  const w = r.worker ?? r.rank, k = r.replica ?? 0;
  return w === r.rank && k === 0 ? `rank ${r.rank}` : `rank ${r.rank} (worker ${w}, replica ${k})`;
}

/** The naming events of one process: its name, sort order and its two tracks. */
export function processEvents(pid: number, name: string): TraceEvent[] {
  return [
    { name: "process_name", ph: "M", ts: 0, pid, tid: 0, args: { name } },
    { name: "process_sort_index", ph: "M", ts: 0, pid, tid: 0, args: { sort_index: pid } },
    { name: "thread_name", ph: "M", ts: 0, pid, tid: TID.compute, args: { name: "compute" } },
    { name: "thread_sort_index", ph: "M", ts: 0, pid, tid: TID.compute, args: { sort_index: 0 } },
    { name: "thread_name", ph: "M", ts: 0, pid, tid: TID.comm, args: { name: "communication" } },
    { name: "thread_sort_index", ph: "M", ts: 0, pid, tid: TID.comm, args: { sort_index: 1 } },
  ];
}

/**
 * The events of one worker's step. Times are moved by the record's clock offset (rank 0's axis) and
 * taken from `origin` (epoch ms). A run of W's executed as one stacked pass becomes `run` events of
 * equal share, their micro-batches read from the worker's action `list`, so every W of the schedule
 * has its event.
 */
export function stepEvents(r: RankTimings, step: number, origin: number, list: readonly Action[] = []): TraceEvent[] {
  const pid = r.rank, off = r.clock?.offsetMs ?? 0;
  const at = (t: number): number => us(t + off - origin);
  const out: TraceEvent[] = [];
  const action = (a: ActionRecord, microbatch: number, start: number, end: number): void => {
    const x = { ...a, microbatch };
    out.push({ name: a.kind, cat: "compute", ph: "X", ts: at(start), dur: Math.max(0, us(end - start)), pid, tid: TID.compute,
      args: { stage: a.stage, chunk: a.chunk, microbatch, step, action: formatAction(x), cpu_us: Math.round(a.cpu / a.run) } });
  };
  let cursor = 0;
  for (const a of r.actions) {
    const share = (a.end - a.start) / a.run;
    let mbs = [a.microbatch];
    if (a.run > 1) {
      const i = list.findIndex((b, j) => j >= cursor && b.kind === a.kind && b.stage === a.stage && b.chunk === a.chunk && b.microbatch === a.microbatch);
      if (i >= 0) { mbs = list.slice(i, i + a.run).map((b) => b.microbatch); cursor = i + a.run; }
    }
    for (let i = 0; i < a.run; i++) action(a, mbs[i] ?? a.microbatch, a.start + i * share, a.start + (i + 1) * share);
  }
  const message = (name: "send" | "receive" | "allreduce", m: MessageRecord): void => {
    const k = parseMessageKey(m.key);
    out.push({ name, cat: name === "allreduce" ? "collective" : "message", ph: "X", ts: at(m.at), dur: Math.max(0, us(m.ms)), pid, tid: TID.comm,
      args: { key: m.key, bytes: m.bytes, step, ...(k ? { stage: k.stage, microbatch: k.microbatch, what: k.what } : {}) } });
  };
  for (const m of r.sends) message("send", m);
  for (const m of r.receives) message("receive", m);
  for (const m of r.collectives ?? []) message("allreduce", m);
  return out;
}

/** Clock offsets as the metadata lists them. */
export function clockMetadata(clocks: readonly ClockSync[] | null): TraceSegment["clock"] {
  return clocks ? clocks.map((c, rank) => ({ rank, offset_ms: c.offsetMs, rtt_ms: c.rttMs, rounds: c.rounds })) : null;
}
