// Weight gradients once per step (schedule/weight-grads.ts): over a grid of schedules,
// generateSchedule(..., { weightGrads: "step" }) yields valid lists (checked by the independent
// validator) with a split backward, exactly one F, B and W per (stage, micro-batch, chunk), and on
// every worker each step's W's after all its B's, grouped by chunk, in the B's micro-batch order,
// immediately before the stage's STEP. The expected W block of each STEP is rebuilt here from the
// B's of the list itself, never from hard-coded lists.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type Action, formatAction, generateSchedule, peakActivations, type Schedule, validateSchedule,
} from "../src/pipeline/schedule/index.js";

interface Shape { name: string; S: number; M: number; v: number }

function grid(): Shape[] {
  const out: Shape[] = [];
  for (let S = 1; S <= 4; S++) {
    for (let M = 1; M <= 8; M++) {
      for (const name of ["gpipe", "1f1b", "zb-h1"]) out.push({ name, S, M, v: 1 });
      if (M % S === 0) for (const v of [1, 2]) out.push({ name: "interleaved", S, M, v });
    }
  }
  return out;
}

const tag = (c: Shape, steps: number): string => `${c.name} S=${c.S} M=${c.M} v=${c.v} steps=${steps}`;

/**
 * Checks the W placement on one worker list (restricted to `stages` when several share a worker):
 * between two STEPs of a stage, its actions are F/B's, then a W block right before the STEP; the
 * block holds one W per B of that step, grouped by chunk in the order chunks first appear among
 * the B's, and inside a chunk in the B's micro-batch order.
 */
function checkPlacement(list: readonly Action[], what: string): void {
  const stages = [...new Set(list.map((a) => a.stage))];
  for (const st of stages) {
    const mine = list.filter((a) => a.stage === st);
    let bs: Action[] = [];
    let i = 0;
    while (i < mine.length) {
      const a = mine[i];
      if (a.kind === "F") { i++; continue; }
      if (a.kind === "B") { bs.push(a); i++; continue; }
      // A W block must run until the STEP, with nothing in between.
      let j = i;
      while (j < mine.length && mine[j].kind === "W") j++;
      assert.ok(j < mine.length && mine[j].kind === "STEP",
        `${what}: stage ${st}: W's at #${i} are not followed directly by its STEP (next: ${mine[j] ? formatAction(mine[j]) : "end"})`);
      const block = mine.slice(i, j);
      const chunks = [...new Set(bs.map((b) => b.chunk))];
      const expected = chunks.flatMap((c) => bs.filter((b) => b.chunk === c).map((b) => `${b.stage}W${b.microbatch}c${b.chunk}`));
      assert.deepEqual(block.map((w) => `${w.stage}W${w.microbatch}c${w.chunk}`), expected,
        `${what}: stage ${st}: W block before ${formatAction(mine[j])} is not the step's B's grouped by chunk in B order`);
      // Independently: each chunk's W's are consecutive.
      const seen = new Set<number>();
      block.forEach((w, k) => {
        if (k > 0 && block[k - 1].chunk !== w.chunk) assert.ok(!seen.has(w.chunk), `${what}: stage ${st}: chunk ${w.chunk}'s W's are split`);
        seen.add(w.chunk);
      });
      bs = [];
      i = j + 1;
    }
    assert.equal(bs.length, 0, `${what}: stage ${st}: B's after its last STEP`);
  }
}

/** On the worker's own list: a stage's W's of a step come after every B of that stage in that step. */
function checkAfterBs(s: Schedule, what: string): void {
  s.workers.forEach((list, w) => {
    list.forEach((a, i) => {
      if (a.kind !== "W") return;
      const step = Math.floor(a.microbatch / s.microbatches);
      const laterB = list.slice(i + 1).find((b) => b.kind === "B" && b.stage === a.stage && Math.floor(b.microbatch / s.microbatches) === step);
      assert.equal(laterB, undefined, `${what}: worker ${w}: ${formatAction(a)} precedes ${laterB && formatAction(laterB)}`);
    });
  });
}

function counts(s: Schedule, what: string): void {
  const n = new Map<string, number>();
  for (const list of s.workers) for (const a of list) n.set(formatAction(a), (n.get(formatAction(a)) ?? 0) + 1);
  let total = 0;
  for (let st = 0; st < s.stages; st++) {
    for (let mb = 0; mb < s.steps * s.microbatches; mb++) {
      for (let c = 0; c < s.chunks; c++) {
        for (const kind of ["F", "B", "W"] as const) {
          const key = formatAction({ stage: st, kind, microbatch: mb, chunk: c });
          assert.equal(n.get(key), 1, `${what}: ${key} appears ${n.get(key) ?? 0} times`);
          total++;
        }
      }
    }
    for (let k = 0; k < s.steps; k++) { assert.equal(n.get(`${st}STEP${k}`), 1, `${what}: ${st}STEP${k}`); total++; }
  }
  assert.equal(s.workers.reduce((t, l) => t + l.length, 0), total, `${what}: extra actions`);
}

test("weightGrads 'step': valid, one F/B/W each, W blocks grouped by chunk in B order right before each STEP", () => {
  let checked = 0;
  for (const c of grid()) {
    for (const steps of [1, 2]) {
      const what = tag(c, steps);
      const s = generateSchedule(c.name, { stages: c.S, microbatches: c.M, chunks: c.v, steps, weightGrads: "step" });
      const r = validateSchedule(s);
      assert.ok(r.ok, `${what}: ${r.errors.join("\n")}`);
      assert.equal(s.splitBackward, true, what);
      assert.equal(s.synchronous, true, what);
      counts(s, what);
      checkAfterBs(s, what);
      s.workers.forEach((list, w) => checkPlacement(list, `${what} worker ${w}`));
      // F's and B's keep the generator's order (only W's move).
      const base = generateSchedule(c.name, { stages: c.S, microbatches: c.M, chunks: c.v, steps });
      const fb = (l: readonly Action[]): string[] => l.filter((a) => a.kind !== "W").map(formatAction);
      s.workers.forEach((list, w) => assert.deepEqual(fb(list), fb(base.workers[w]), `${what} worker ${w}: F/B/STEP order changed`));
      checked++;
    }
  }
  assert.ok(checked > 100, `only ${checked} schedules checked`);
});

test("weightGrads 'step' with several stages per worker: each stage's own W block still sits right before its STEP", () => {
  for (const [name, S, M, v, map] of [["1f1b", 4, 4, 1, [0, 0, 1, 1]], ["gpipe", 3, 2, 1, [0, 1, 1]], ["zb-h1", 4, 3, 1, [0, 1, 1, 0]],
    ["interleaved", 2, 4, 2, [0, 0]]] as const) {
    const what = `${name} S=${S} M=${M} v=${v} map=[${map.join(",")}]`;
    const s = generateSchedule(name, { stages: S, microbatches: M, chunks: v, stageToWorker: map, weightGrads: "step" });
    const r = validateSchedule(s);
    assert.ok(r.ok, `${what}: ${r.errors.join("\n")}`);
    counts(s, what);
    checkAfterBs(s, what);
    // Restricted to each stage (checkPlacement filters per stage): W's right before its STEP.
    s.workers.forEach((list, w) => checkPlacement(list, `${what} worker ${w}`));
  }
});

test("weightGrads 'step': activations live until the W's, so 1F1B's peak becomes M on every stage (GPipe's)", () => {
  for (let S = 1; S <= 4; S++) {
    for (let M = 1; M <= 8; M++) {
      const s = generateSchedule("1f1b", { stages: S, microbatches: M, weightGrads: "step" });
      const expected = new Array<number>(S).fill(M);
      assert.deepEqual(validateSchedule(s).peakActivations, expected, `1f1b S=${S} M=${M} (validator)`);
      // Independent count: F adds one live micro-batch per stage, W frees it.
      const live = new Array<number>(S).fill(0), peak = new Array<number>(S).fill(0);
      for (const list of s.workers) for (const a of list) {
        if (a.kind === "F") peak[a.stage] = Math.max(peak[a.stage], ++live[a.stage]);
        if (a.kind === "W") live[a.stage]--;
      }
      assert.deepEqual(peak, expected, `1f1b S=${S} M=${M} (direct count)`);
      assert.deepEqual(peakActivations(s), expected);
      // Per-micro-batch 1F1B really does keep less on the first stages when M > 1 (the test can tell).
      if (S > 1 && M > 1) assert.ok(peakActivations(generateSchedule("1f1b", { stages: S, microbatches: M }))[S - 1] < M);
    }
  }
});

test("weightGrads 'step' on async (no flush): valid, each W right before the STEP that consumes its gradient", () => {
  for (let S = 1; S <= 4; S++) {
    for (const M of [1, 2, 3, 4]) {
      const what = `async S=${S} M=${M}`;
      const s = generateSchedule("async", { stages: S, microbatches: M, weightGrads: "step" });
      assert.equal(s.synchronous, false);
      const r = validateSchedule(s);
      assert.ok(r.ok, `${what}: ${r.errors.join("\n")}`);
      counts(s, what);
      checkAfterBs(s, what);
      s.workers.forEach((list, w) => checkPlacement(list, `${what} worker ${w}`));
      // F, B and STEP keep the generator's order (same delays).
      const plain = generateSchedule("async", { stages: S, microbatches: M });
      s.workers.forEach((list, w) => assert.deepEqual(list.filter((a) => a.kind !== "W"), plain.workers[w], what));
    }
  }
});

test("weightGrads errors: an unknown mode (message names the value and the modes)", () => {
  for (const bad of ["steps", "", "STEP", "per-step"]) {
    assert.throws(() => generateSchedule("1f1b", { stages: 2, microbatches: 2, weightGrads: bad as "step" }),
      (e: Error) => e.message.includes(`'${bad}'`) && e.message.includes("microbatch") && e.message.includes("step"),
      `mode '${bad}'`);
  }
  // "microbatch" is the default: same lists as without the option.
  const a = generateSchedule("zb-h1", { stages: 3, microbatches: 4 });
  const b = generateSchedule("zb-h1", { stages: 3, microbatches: 4, weightGrads: "microbatch" });
  assert.deepEqual(b.workers, a.workers);
});
