// Accumulates the timing records of a run's steps and writes them as one Chrome trace. The caller
// hands over the executor after every step (add); a new executor (the one after a warm-up, or one
// restarted with new weights) starts a new segment with its own schedule and clock offsets. On the
// processes executor each rank keeps its own records; finish() gathers them (collective) and rank 0
// alone writes the merged file.
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import type { RankTimings, TimingSource } from "../pipeline/runtime/action-records.js";
import { parseAction, type Schedule } from "../pipeline/schedule/index.js";
import { clockMetadata, TID, processEvents, processName, stepEvents, traceSchedule, type TraceEvent, type TraceFile, type TraceSchedule, type TraceSegment, type TraceStepInfo } from "./chrome-trace.js";

/** The steps one executor ran, as this process recorded them. */
export interface RecordedSegment {
  executor: string;
  process: "worker" | "rank";
  schedule: TraceSchedule;
  /** steps[k]: the records of step k, one per worker (this rank's only, before a gather). */
  steps: RankTimings[][];
}

/** What finish() needs of a processes executor: every rank's value, on every rank. */
export interface Gatherer {
  readonly rank: number;
  gatherAll<T>(value: T, what: string): Promise<T[]>;
}

function isGatherer(x: unknown): x is Gatherer {
  return typeof x === "object" && x !== null && typeof (x as Partial<Gatherer>).gatherAll === "function" && typeof (x as Partial<Gatherer>).rank === "number";
}

export class TraceWriter {
  private readonly segments: RecordedSegment[] = [];
  private current: TimingSource | null = null;

  constructor(readonly file: string) {}

  /** Steps recorded so far (this process's count). */
  get steps(): number { return this.segments.reduce((n, s) => n + s.steps.length, 0); }

  /** The records of the step (or window) `ex` has just run. */
  add(ex: TimingSource): void {
    const t = ex.stepTimings();
    if (!t) throw new Error(`trace: the ${ex.name} executor kept no timing records (it was started without instrumentation.recordActions)`);
    if (ex !== this.current) {
      this.current = ex;
      this.segments.push({ executor: ex.name, process: ex.traceProcess, schedule: traceSchedule(ex.timingSchedule()), steps: [] });
    }
    this.segments[this.segments.length - 1].steps.push(t.filter((r) => r !== undefined && r !== null));
  }

  /**
   * Writes the trace; returns the file (null on ranks other than 0). With a processes executor
   * (`gather`) it is collective: every rank must call it, before the executor closes.
   */
  async finish(gather?: unknown): Promise<string | null> {
    let segments = this.segments;
    if (isGatherer(gather)) {
      const all = await gather.gatherAll(this.segments, "the trace records");
      if (gather.rank !== 0) { this.segments.length = 0; return null; }
      segments = mergeRanks(all);
    }
    writeTrace(this.file, buildTrace(segments));
    this.segments.length = 0; // written: a second finish has nothing to add
    return this.file;
  }
}

/** Every rank's segments as one list: step k of segment i holds each rank's record of it, in rank order. */
export function mergeRanks(perRank: readonly (readonly RecordedSegment[])[]): RecordedSegment[] {
  const first = perRank[0] ?? [];
  return first.map((seg, i) => {
    const steps = seg.steps.map((_, k) => perRank.flatMap((segs, r) => {
      const s = segs[i]?.steps[k];
      if (!s) throw new Error(`trace: rank ${r} recorded ${segs[i]?.steps.length ?? 0} step(s) in segment ${i}, rank 0 ${seg.steps.length}`);
      return s;
    }));
    return { ...seg, steps };
  });
}

/** The Chrome trace of the recorded segments (times on rank 0's clock, from the earliest record). */
export function buildTrace(segments: readonly RecordedSegment[]): TraceFile {
  if (segments.length === 0 || segments.every((s) => s.steps.length === 0)) throw new Error("trace: no step was recorded");
  const aligned = (r: RankTimings, t: number): number => t + (r.clock?.offsetMs ?? 0);
  const records = segments.flatMap((s) => s.steps.flat());
  // Loops, not spreads: a long run holds more records than a call takes arguments.
  let origin = Infinity;
  for (const r of records) {
    origin = Math.min(origin, aligned(r, r.begin));
    for (const a of r.actions) origin = Math.min(origin, aligned(r, a.start));
    for (const m of r.receives) origin = Math.min(origin, aligned(r, m.at));
    for (const m of r.sends) origin = Math.min(origin, aligned(r, m.at));
  }
  const events: TraceEvent[] = [];
  const named = new Set<number>();
  const process = segments[0].process;
  const meta: TraceSegment[] = [];
  const steps: TraceStepInfo[] = [];
  let step = 0;
  segments.forEach((seg, i) => {
    const clocks = new Map<number, NonNullable<RankTimings["clock"]>>();
    meta.push({ executor: seg.executor, schedule: seg.schedule, firstStep: step, steps: seg.steps.length, clock: null });
    const lists = seg.schedule.lists;
    for (const workers of seg.steps) {
      let begin = Infinity, end = -Infinity;
      for (const r of workers) {
        if (!named.has(r.rank)) { named.add(r.rank); events.push(...processEvents(r.rank, processName(r, process))); }
        if (r.clock) clocks.set(r.rank, r.clock);
        const worker = r.worker ?? r.rank;
        const mine = stepEvents(r, step, origin, (lists[worker] ?? []).map(parseAction));
        for (const e of mine) if (e.tid === TID.compute) { begin = Math.min(begin, e.ts); end = Math.max(end, e.ts + (e.dur ?? 0)); }
        events.push(...mine);
      }
      steps.push({ step, segment: i, begin_us: begin, end_us: end });
      step++;
    }
    if (clocks.size) meta[i].clock = clockMetadata([...clocks.keys()].sort((a, b) => a - b).map((k) => clocks.get(k)!));
  });
  return { traceEvents: events, displayTimeUnit: "ms",
    metadata: { format: "pipewright-trace", version: 1, process, origin_ms: origin, schedule: segments[0].schedule, segments: meta, steps } };
}

/** The trace as JSON, one event per line (diffable, and still one JSON object). */
export function traceJson(t: TraceFile): string {
  return `{"traceEvents": [\n${t.traceEvents.map((e) => JSON.stringify(e)).join(",\n")}\n],\n"displayTimeUnit": "ms",\n"metadata": ${JSON.stringify(t.metadata)}}\n`;
}

export function writeTrace(file: string, t: TraceFile): void {
  writeFileAtomic(file, traceJson(t));
}

/**
 * A trace of steps already gathered on one process (e.g. a benchmark's every rank's records of each
 * timed step): `steps[k]` holds every worker's or rank's record of step k.
 */
export function writeRecordedTrace(file: string, executor: string, schedule: Schedule, steps: readonly (readonly RankTimings[])[]): void {
  writeTrace(file, buildTrace([{ executor, process: executor === "processes" ? "rank" : "worker", schedule: traceSchedule(schedule), steps: steps.map((s) => [...s]) }]));
}

/** With several schedules in one run, one file each: FILE with the schedule's name before its extension. */
export function traceFileFor(file: string, schedule: string, several: boolean): string {
  if (!several) return file;
  const dot = file.lastIndexOf(".");
  return dot > file.lastIndexOf("/") ? `${file.slice(0, dot)}-${schedule}${file.slice(dot)}` : `${file}-${schedule}`;
}
