import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatAction, generateSchedule, parseAction, type Schedule, ScheduleError, assertValidSchedule, validateSchedule, withReplicas,
} from "../src/pipeline/schedule/index.js";

function handMade(lists: string[][], over: Partial<Schedule> = {}): Schedule {
  return {
    name: "hand-made", stages: lists.length, microbatches: 2, chunks: 1, steps: 1, splitBackward: false,
    synchronous: true, stageToWorker: lists.map((_, i) => i), workers: lists.map((l) => l.map(parseAction)), ...over,
  };
}

test("a deadlocked schedule is rejected with a grid naming the first stuck action per worker", () => {
  // Stage 0 waits for 1B0 before sending micro-batch 1; stage 1 insists on micro-batch 1 first.
  const s = handMade([
    ["0F0", "0B0", "0F1", "0B1", "0STEP0"],
    ["1F1", "1B1", "1F0", "1B0", "1STEP0"],
  ]);
  const r = validateSchedule(s);
  assert.equal(r.ok, false);
  const msg = r.errors.join("\n");
  assert.match(msg, /deadlock in schedule 'hand-made' after 1 of 10 actions/);
  assert.match(msg, /worker \| done \| stuck at \| waiting for/);
  assert.match(msg, /^0\s+\| 1\/5\s+\| 0B0\s+\| 1B0 \(worker 1 #3, behind 1F1\)$/m);
  assert.match(msg, /^1\s+\| 0\/5\s+\| 1F1\s+\| 0F1 \(worker 0 #2, behind 0B0\)$/m);
  assert.throws(() => assertValidSchedule(s), ScheduleError);
});

test("a valid hand-made schedule passes and differs from the deadlocked one only in order", () => {
  const s = handMade([
    ["0F0", "0F1", "0B0", "0B1", "0STEP0"],
    ["1F1", "1B1", "1F0", "1B0", "1STEP0"],
  ]);
  assert.deepEqual(validateSchedule(s).errors, []);
});

test("missing, duplicated and misplaced actions are reported", () => {
  const missing = validateSchedule(handMade([["0F0", "0F1", "0B0", "0STEP0"], ["1F0", "1B0", "1F1", "1B1", "1STEP0"]]));
  assert.ok(missing.errors.some((e) => e === "0B1 appears 0 times; expected exactly once"), missing.errors.join("\n"));
  const dup = validateSchedule(handMade([["0F0", "0F0", "0F1", "0B0", "0B1", "0STEP0"], ["1F0", "1B0", "1F1", "1B1", "1STEP0"]]));
  assert.ok(dup.errors.includes("0F0 appears 2 times; expected exactly once"));
  const wrong = validateSchedule(handMade([["0F0", "0F1", "0B0", "0B1", "1STEP0"], ["1F0", "1B0", "1F1", "1B1", "0STEP0"]]));
  assert.ok(wrong.errors.some((e) => e.includes("worker 0 #4 '1STEP0': stage 1 belongs to worker 1")), wrong.errors.join("\n"));
  const range = validateSchedule(handMade([["0F0", "0F1", "0B0", "0B1", "0STEP0", "0F9"], ["1F0", "1B0", "1F1", "1B1", "1STEP0"]]));
  assert.ok(range.errors.some((e) => e.includes("micro-batch 9 is outside 0..1")));
  const w = validateSchedule(handMade([["0F0", "0F1", "0B0", "0W0", "0B1", "0STEP0"], ["1F0", "1B0", "1F1", "1B1", "1STEP0"]]));
  assert.ok(w.errors.some((e) => e.includes("W in a schedule without a split backward")));
});

test("a split schedule without its W, or a STEP before a W, is rejected", () => {
  const s = generateSchedule("zb-h1", { stages: 2, microbatches: 2 });
  const noW = { ...s, workers: s.workers.map((l) => l.filter((a) => !(a.kind === "W" && a.microbatch === 1))) };
  assert.ok(validateSchedule(noW).errors.some((e) => e.startsWith("0W1 appears 0 times")));
  // Move stage 0's STEP before its last W: the STEP then waits for a W later in its own list.
  const l0 = [...s.workers[0]];
  const step = l0.pop();
  l0.splice(l0.length - 1, 0, step as (typeof l0)[number]);
  const early = validateSchedule({ ...s, workers: [l0, s.workers[1]] });
  assert.match(early.errors.join("\n"), /0STEP0\s+\| 0W1 \(worker 0 #\d+, later in its own list\)/);
});

test("a synchronous schedule whose next-step forward precedes the STEP is a deadlock", () => {
  const s = generateSchedule("gpipe", { stages: 1, microbatches: 1, steps: 2 });
  const [f0, b0, st0, f1, b1, st1] = s.workers[0];
  const bad = { ...s, workers: [[f0, b0, f1, st0, b1, st1]] };
  assert.match(validateSchedule(bad).errors.join("\n"), /0F1\s+\| 0STEP0 \(worker 0 #3, later in its own list\)/);
});

test("lowering: one SEND and one RECV per cross-worker edge, RECV before its consumer, SEND after its producer", async () => {
  const { lowerCommunication, formatLoweredOp, dependencies, isMessage, contiguousWorkers } = await import("../src/pipeline/schedule/index.js");
  const cases = [
    generateSchedule("1f1b", { stages: 3, microbatches: 4 }),
    generateSchedule("interleaved", { stages: 2, microbatches: 4, chunks: 2 }),
    generateSchedule("zb-h1", { stages: 3, microbatches: 3 }),
    generateSchedule("async", { stages: 6, microbatches: 1, stageToWorker: contiguousWorkers(6, 2) }),
  ];
  for (const s of cases) {
    const lowered = lowerCommunication(s);
    // Independent count of cross-worker edges from the dependency graph.
    let edges = 0;
    for (const list of s.workers) for (const a of list) for (const d of dependencies(a, s)) {
      if ((d.kind === "F" || d.kind === "B") && !(d.stage === a.stage && d.chunk === a.chunk) && isMessage(d, a, s.stageToWorker)) edges++;
    }
    const sends = lowered.flat().filter((o) => o.op === "send").map(formatLoweredOp);
    const recvs = lowered.flat().filter((o) => o.op === "recv");
    assert.equal(sends.length, edges, s.name);
    assert.equal(recvs.length, edges, s.name);
    lowered.forEach((ops, w) => {
      assert.deepEqual(ops.filter((o) => o.op === "compute").map((o) => o.op === "compute" && o.action), s.workers[w]);
      ops.forEach((o, i) => {
        if (o.op === "recv") {
          const next = ops.slice(i + 1).find((x) => x.op === "compute");
          assert.ok(next && next.op === "compute" && formatAction(next.action) === formatAction(o.consumer), `${s.name}: ${formatLoweredOp(o)}`);
        }
        if (o.op === "send") {
          const prev = ops.slice(0, i).reverse().find((x) => x.op === "compute");
          assert.ok(prev && prev.op === "compute" && prev.action === o.producer, `${s.name}: ${formatLoweredOp(o)}`);
        }
      });
    });
  }
  const one = lowerCommunication(generateSchedule("gpipe", { stages: 2, microbatches: 1 })).map((l) => l.map(formatLoweredOp).join(" "));
  assert.deepEqual(one, ["0F0 send 0F0->w1 recv 1B0<-w1 0B0 0STEP0", "recv 0F0<-w0 1F0 1B0 send 1B0->w0 1STEP0"]);
});

test("withReplicas puts a REDUCE right before every STEP; the validator wants exactly one per stage and step, and only with replicas", () => {
  const base = generateSchedule("1f1b", { stages: 2, microbatches: 3 });
  const r = withReplicas(base, 2);
  assert.equal(r.replicas, 2);
  for (const list of r.workers) {
    const i = list.findIndex((a) => a.kind === "REDUCE");
    assert.ok(i >= 0);
    assert.equal(formatAction(list[i + 1]), formatAction({ ...list[i], kind: "STEP" }));
    assert.deepEqual(list.filter((a) => a.kind !== "REDUCE"), [...base.workers[r.workers.indexOf(list)]]);
  }
  assert.equal(validateSchedule(r).ok, true);
  assert.deepEqual(parseAction("1REDUCE0"), { stage: 1, kind: "REDUCE", microbatch: 0, chunk: 0 });
  assert.equal(formatAction(parseAction("1REDUCE0")), "1REDUCE0");
  assert.throws(() => parseAction("1REDUCE0c1"), /a REDUCE has no chunk/);
  // One copy: no REDUCE, and one where it does not belong is an error naming it.
  assert.deepEqual(withReplicas(r, 1).workers, base.workers);
  const stray = { ...base, workers: [[...base.workers[0].slice(0, -1), parseAction("0REDUCE0"), ...base.workers[0].slice(-1)], base.workers[1]] };
  assert.match(validateSchedule(stray).errors.join("\n"), /0REDUCE0'?: REDUCE in a schedule without replicas/);
  // A missing REDUCE, and one after its STEP (the STEP waits for it: a deadlock).
  const missing = { ...r, workers: [r.workers[0].filter((a) => a.kind !== "REDUCE"), r.workers[1]] };
  assert.match(validateSchedule(missing).errors.join("\n"), /0REDUCE0 appears 0 times; expected exactly once/);
  const late = r.workers[0].filter((a) => a.kind !== "REDUCE");
  const swapped = { ...r, workers: [[...late, parseAction("0REDUCE0")], r.workers[1]] };
  assert.match(validateSchedule(swapped).errors.join("\n"), /deadlock[\s\S]*0STEP0\s+\| 0REDUCE0 \(worker 0 #\d+, later in its own list\)/);
  assert.throws(() => withReplicas(generateSchedule("async", { stages: 2, microbatches: 2, steps: 2 }), 2), /2 replicas need a synchronous schedule of one step/);
  assert.throws(() => withReplicas(base, 0), /replicas must be a positive integer, got 0/);
});
