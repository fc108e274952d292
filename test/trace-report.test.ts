// `pipewright trace report`: busy + waiting + bubble = 1 per worker, and a critical path that ends at
// the step's last action; on a hand-made trace the fractions and the path are known exactly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAIN } from "./mpi-helpers.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import type { ActionRecord, RankTimings } from "../src/pipeline/runtime/action-records.js";
import { buildTrace } from "../src/trace/trace-writer.js";
import { traceSchedule } from "../src/trace/chrome-trace.js";
import { criticalPath, fractions, type TraceReport } from "../src/trace/report.js";
import { loadTrace, xEvents } from "./trace-helpers.js";

const rec = (kind: ActionRecord["kind"], stage: number, microbatch: number, start: number, end: number): ActionRecord =>
  ({ kind, stage, chunk: 0, microbatch, run: 1, start, end, cpu: 0 });

/**
 * GPipe, S = 2, M = 1 by hand (ms): worker 0 runs F 0-2, sends a1:0 at 1.9; worker 1 receives it at
 * 2.5-2.6, runs F 3-4 and B 4-7 (sending g0:0 at 6.9), STEP 7-8; worker 0 receives g0:0 at 7.5-7.6,
 * runs B 8-10, STEP 10-11. The step spans 0-11.
 */
function handMade(): ReturnType<typeof buildTrace> {
  const s = generateSchedule("gpipe", { stages: 2, microbatches: 1 });
  const w0: RankTimings = { rank: 0, begin: 0, listDone: 11, end: 11, actions: [rec("F", 0, 0, 0, 2), rec("B", 0, 0, 8, 10), rec("STEP", 0, 0, 10, 11)],
    sends: [{ key: "a1:0", bytes: 64, at: 1.9, ms: 0.05 }], receives: [{ key: "g0:0", bytes: 64, at: 7.5, ms: 0.1 }] };
  const w1: RankTimings = { rank: 1, begin: 0, listDone: 8, end: 8, actions: [rec("F", 1, 0, 3, 4), rec("B", 1, 0, 4, 7), rec("STEP", 1, 0, 7, 8)],
    sends: [{ key: "g0:0", bytes: 64, at: 6.9, ms: 0.05 }], receives: [{ key: "a1:0", bytes: 64, at: 2.5, ms: 0.1 }] };
  return buildTrace([{ executor: "inline", process: "worker", schedule: traceSchedule(s), steps: [[w0, w1]] }]);
}

test("trace report on a hand-made step: exact fractions and the critical path through both messages", () => {
  const t = handMade();
  const { workers } = fractions(t);
  const near = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);
  // worker 0: busy 2 + 2 + 1 = 5 of 11, no bubble (first action at 0, last ends at 11), waiting 6.
  near(workers[0].busy, 5 / 11); near(workers[0].bubble, 0); near(workers[0].waiting, 6 / 11);
  // worker 1: busy 5, bubble 3 before + 3 after, waiting 0.
  near(workers[1].busy, 5 / 11); near(workers[1].bubble, 6 / 11); near(workers[1].waiting, 0);
  const path = criticalPath(t, 0).map((l) => `${l.pid}:${l.kind === "action" ? l.what : `${l.kind} ${l.what}`}`);
  assert.deepEqual(path, ["0:0F0", "0:send a1:0", "1:receive a1:0", "1:1F0", "1:1B0", "1:send g0:0", "0:receive g0:0", "0:0B0", "0:0STEP0"]);
});

test("trace report FILE --json --svg on a traced threads run: fractions sum to 1, the path ends at the step's last action", () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-trace-report-"));
  try {
    const file = join(dir, "run.json"), svg = join(dir, "run.svg");
    const r = spawnSync(process.execPath, [MAIN, "train", "--model", "mlp", "--layers", "2", "--width", "64", "--data", "slice", "--limit", "144", "--epochs", "1",
      "--batch", "48", "--quiet", "--schedule", "1f1b", "--stages", "2", "--microbatches", "4", "--executor", "threads", "--trace", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const out = spawnSync(process.execPath, [MAIN, "trace", "report", file, "--json", "--svg", svg], { encoding: "utf8" });
    assert.equal(out.status, 0, out.stderr);
    const rep = JSON.parse(out.stdout) as TraceReport;
    assert.equal(rep.steps, 3);
    assert.equal(rep.workers.length, 2);
    for (const w of rep.workers) {
      assert.ok(Math.abs(w.busy + w.waiting + w.bubble - 1) < 1e-9, JSON.stringify(w));
      for (const x of [w.busy, w.waiting, w.bubble]) assert.ok(x >= 0 && x <= 1, JSON.stringify(w));
    }
    assert.ok(rep.workers.every((w) => w.busy > 0));
    // The path runs forward in time and ends at the last-ending action of its step.
    const t = loadTrace(file);
    const acts = xEvents(t, (e) => e.cat === "compute" && e.args?.step === rep.critical_step);
    const t0 = Math.min(...acts.map((e) => e.ts));
    const lastEnd = Math.max(...acts.map((e) => e.ts + e.dur!));
    const last = rep.critical_path[rep.critical_path.length - 1];
    const lastAction = acts.find((e) => e.ts + e.dur! === lastEnd)!;
    assert.equal(last.kind, "action");
    assert.equal(last.what, lastAction.args?.action);
    assert.ok(Math.abs(last.end_ms - (lastEnd - t0) / 1000) < 1e-6);
    assert.ok(Math.abs(rep.critical_path[0].start_ms) < 1e-9, "the path starts at the step's first action");
    for (let i = 1; i < rep.critical_path.length; i++) assert.ok(rep.critical_path[i].end_ms >= rep.critical_path[i - 1].start_ms);
    // Two timelines, simulated above measured, in one SVG.
    const text = readFileSync(svg, "utf8");
    assert.equal(text.match(/<svg /g)?.length, 3);
    assert.ok(text.indexOf("simulated") < text.indexOf("measured"));
    // The human-readable form names each worker and the path.
    const plain = spawnSync(process.execPath, [MAIN, "trace", "report", file], { encoding: "utf8" });
    assert.equal(plain.status, 0, plain.stderr);
    assert.match(plain.stdout, /worker 0 .*%/);
    assert.match(plain.stdout, /critical path of step \d+/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * One stage, 2 replicas by hand (ms): replica 0 runs F 0-1, B 1-3, REDUCE 3-9 (waiting for replica
 * 1's copy, which starts at 8), STEP 9-11; replica 1 runs F 0-2, B 2-8, REDUCE 8-9, STEP 9-10.
 */
function handMadeReplicas(): ReturnType<typeof buildTrace> {
  const s = generateSchedule("gpipe", { stages: 1, microbatches: 1 });
  const r0: RankTimings = { rank: 0, worker: 0, replica: 0, begin: 0, listDone: 11, end: 11, sends: [], receives: [],
    actions: [rec("F", 0, 0, 0, 1), rec("B", 0, 0, 1, 3), rec("REDUCE", 0, 0, 3, 9), rec("STEP", 0, 0, 9, 11)] };
  const r1: RankTimings = { rank: 1, worker: 0, replica: 1, begin: 0, listDone: 10, end: 10, sends: [], receives: [],
    actions: [rec("F", 0, 0, 0, 2), rec("B", 0, 0, 2, 8), rec("REDUCE", 0, 0, 8, 9), rec("STEP", 0, 0, 9, 10)] };
  return buildTrace([{ executor: "threads", process: "worker", schedule: traceSchedule(s), steps: [[r0, r1]] }]);
}

test("trace report with replicas: a REDUCE's wait for the other replica is waiting, and the path goes on from the replica that reached it last", () => {
  const t = handMadeReplicas();
  const { workers } = fractions(t);
  const near = (a: number, b: number): void => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);
  assert.deepEqual(workers.map((w) => w.name), ["worker 0", "worker 0 (replica 1)"]);
  // replica 0: busy 1 + 2 + (6 - 5 waited) + 2 = 6 of 11, waiting 5; replica 1: busy 10, bubble 1 after.
  near(workers[0].busy, 6 / 11); near(workers[0].waiting, 5 / 11); near(workers[0].bubble, 0);
  near(workers[1].busy, 10 / 11); near(workers[1].waiting, 0); near(workers[1].bubble, 1 / 11);
  const path = criticalPath(t, 0).map((l) => `${l.pid}:${l.what}`);
  assert.deepEqual(path, ["1:0F0", "1:0B0", "1:0REDUCE0", "0:0REDUCE0", "0:0STEP0"]);
});

test("trace report on a threads run with 2 replicas: every replica's worker, and the path through the REDUCE that started last", () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-trace-report-"));
  try {
    const file = join(dir, "run.json");
    const r = spawnSync(process.execPath, [MAIN, "train", "--model", "mlp", "--layers", "2", "--width", "64", "--data", "slice", "--limit", "144", "--epochs", "1",
      "--batch", "48", "--quiet", "--schedule", "1f1b", "--stages", "2", "--microbatches", "4", "--executor", "threads", "--replicas", "2", "--trace", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const out = spawnSync(process.execPath, [MAIN, "trace", "report", file, "--json"], { encoding: "utf8" });
    assert.equal(out.status, 0, out.stderr);
    const rep = JSON.parse(out.stdout) as TraceReport;
    assert.deepEqual(rep.workers.map((w) => w.name), ["worker 0", "worker 1", "worker 0 (replica 1)", "worker 1 (replica 1)"]);
    for (const w of rep.workers) assert.ok(Math.abs(w.busy + w.waiting + w.bubble - 1) < 1e-9, JSON.stringify(w));
    // The step ends with a STEP, after its stage's REDUCE; the path's first REDUCE of that stage is
    // the copy (of the two replicas') that started last.
    const path = rep.critical_path;
    const last = path[path.length - 1];
    assert.match(last.what, /^\dSTEP\d$/);
    const reduces = path.filter((l) => /REDUCE/.test(l.what));
    assert.ok(reduces.length >= 1, JSON.stringify(path));
    const t = loadTrace(file);
    const acts = xEvents(t, (e) => e.cat === "compute" && e.args?.step === rep.critical_step);
    const t0 = Math.min(...acts.map((e) => e.ts));
    const copies = acts.filter((e) => e.args?.action === reduces[0].what);
    assert.equal(copies.length, 2);
    const latest = Math.max(...copies.map((e) => (e.ts - t0) / 1000));
    assert.ok(Math.abs(reduces[0].start_ms - latest) < 1e-6, `${JSON.stringify(reduces[0])} vs latest start ${latest}`);
    // Before it, the path runs on that replica's own earlier action.
    const i = path.indexOf(reduces[0]);
    assert.ok(i > 0 && path[i - 1].pid === reduces[0].pid && path[i - 1].kind === "action", JSON.stringify(path));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("trace report: missing FILE, a file that is not there, a file that is not a trace", () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-trace-bad-"));
  try {
    const none = spawnSync(process.execPath, [MAIN, "trace", "report"], { encoding: "utf8" });
    assert.equal(none.status, 2);
    assert.match(none.stderr, /FILE is required/);
    const missing = spawnSync(process.execPath, [MAIN, "trace", "report", join(dir, "nope.json")], { encoding: "utf8" });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /no such trace file '.*nope\.json'/);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ traceEvents: [] }));
    const notTrace = spawnSync(process.execPath, [MAIN, "trace", "report", bad], { encoding: "utf8" });
    assert.equal(notTrace.status, 1);
    assert.match(notTrace.stderr, /bad\.json: not a pipewright trace/);
    const help = spawnSync(process.execPath, [MAIN, "trace", "report", "--help"], { encoding: "utf8" });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--svg/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
