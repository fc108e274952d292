// Checks shared by the trace tests: the Trace Event Format's required fields, and a step's actions
// against the schedule's lists.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { formatAction, generateSchedule } from "../src/pipeline/schedule/index.js";
import type { TraceEvent, TraceFile } from "../src/trace/chrome-trace.js";

export function loadTrace(path: string): TraceFile {
  return JSON.parse(readFileSync(path, "utf8")) as TraceFile;
}

/** Every event has name, ph, ts, pid, tid of the right types; complete events a dur; no stray phases. */
export function assertWellFormed(t: TraceFile): void {
  assert.ok(Array.isArray(t.traceEvents) && t.traceEvents.length > 0, "traceEvents is a non-empty array");
  assert.equal(t.displayTimeUnit, "ms");
  for (const e of t.traceEvents) {
    const where = JSON.stringify(e);
    assert.equal(typeof e.name, "string", where);
    assert.ok(e.name.length > 0, where);
    assert.ok(e.ph === "X" || e.ph === "M", `unexpected phase: ${where}`);
    assert.ok(typeof e.ts === "number" && Number.isFinite(e.ts), `ts: ${where}`);
    assert.ok(Number.isInteger(e.pid) && e.pid >= 0, `pid: ${where}`);
    assert.ok(Number.isInteger(e.tid) && e.tid >= 0, `tid: ${where}`);
    if (e.ph === "X") {
      assert.ok(typeof e.dur === "number" && Number.isFinite(e.dur) && e.dur >= 0, `dur: ${where}`);
      assert.ok(e.ts >= 0, `ts before the origin: ${where}`);
      assert.equal(typeof e.cat, "string", where);
      assert.equal(typeof e.args, "object", where);
    }
  }
}

/** The process names, and that each process names its compute and communication tracks. */
export function processNames(t: TraceFile): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of t.traceEvents) if (e.ph === "M" && e.name === "process_name") out.set(e.pid, String(e.args?.name));
  for (const pid of out.keys()) {
    const threads = t.traceEvents.filter((e) => e.ph === "M" && e.name === "thread_name" && e.pid === pid).map((e) => String(e.args?.name)).sort();
    assert.deepEqual(threads, ["communication", "compute"], `tracks of pid ${pid}`);
  }
  return out;
}

export const xEvents = (t: TraceFile, pred: (e: TraceEvent) => boolean = () => true): TraceEvent[] =>
  t.traceEvents.filter((e) => e.ph === "X" && pred(e));

/**
 * Each step holds exactly S x M F's and B's, and each worker's compute events, in time order, are
 * its list of the schedule (`pidOfWorker`: the process of worker w).
 */
export function assertFollowsSchedule(t: TraceFile, name: string, S: number, M: number, pidOfWorker: (w: number) => number): void {
  const s = generateSchedule(name, { stages: S, microbatches: M });
  assert.deepEqual(t.metadata.schedule.lists, s.workers.map((l) => l.map(formatAction)));
  assert.equal(t.metadata.schedule.name, name);
  assert.deepEqual([t.metadata.schedule.stages, t.metadata.schedule.microbatches, t.metadata.schedule.chunks], [S, M, 1]);
  assert.ok(t.metadata.steps.length > 0);
  for (const { step } of t.metadata.steps) {
    const mine = xEvents(t, (e) => e.args?.step === step && e.cat === "compute");
    assert.equal(mine.filter((e) => e.name === "F").length, S * M, `F events of step ${step}`);
    assert.equal(mine.filter((e) => e.name === "B").length, S * M, `B events of step ${step}`);
    s.workers.forEach((list, w) => {
      const got = mine.filter((e) => e.pid === pidOfWorker(w)).sort((a, b) => a.ts - b.ts);
      assert.deepEqual(got.map((e) => String(e.args?.action)), list.map(formatAction), `worker ${w}'s actions in step ${step}`);
      for (const e of got) {
        const a = list.find((x) => formatAction(x) === e.args?.action)!;
        assert.deepEqual([e.name, e.args?.stage, e.args?.chunk, e.args?.microbatch], [a.kind, a.stage, a.chunk, a.microbatch]);
      }
      // One worker runs one action at a time.
      for (let i = 1; i < got.length; i++) assert.ok(got[i].ts >= got[i - 1].ts + got[i - 1].dur! - 0.01, `overlapping actions on worker ${w}`);
    });
    // Every message sent in the step is received, once, with its size.
    const sends = xEvents(t, (e) => e.args?.step === step && e.name === "send");
    const recvs = xEvents(t, (e) => e.args?.step === step && e.name === "receive");
    assert.equal(sends.length, 2 * (S - 1) * M, `sends of step ${step}`);
    assert.deepEqual(sends.map((e) => String(e.args?.key)).sort(), recvs.map((e) => String(e.args?.key)).sort());
    for (const e of [...sends, ...recvs]) {
      assert.ok(typeof e.args?.bytes === "number" && e.args.bytes > 0, JSON.stringify(e));
      assert.ok(typeof e.args?.stage === "number" && typeof e.args?.microbatch === "number", JSON.stringify(e));
    }
  }
}
