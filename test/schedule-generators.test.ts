// Property tests over a grid: every generated schedule validates, has exactly one F/B(/W) per
// (stage, micro-batch, chunk), runs F before B before W in each worker's order, and has the peak
// activations the methods promise. Checks here are computed directly from the lists, not by the
// validator, so that the validator itself is under test too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type Action, formatAction, generateSchedule, type Schedule, validateSchedule } from "../src/pipeline/schedule/index.js";

interface Case { name: string; S: number; M: number; v: number }

function grid(): Case[] {
  const out: Case[] = [];
  for (let S = 1; S <= 8; S++) {
    for (let M = 1; M <= 16; M++) {
      for (const name of ["gpipe", "1f1b", "zb-h1"]) out.push({ name, S, M, v: 1 });
      for (let v = 1; v <= 3; v++) if (v === 1 || M % S === 0) out.push({ name: "interleaved", S, M, v });
    }
  }
  return out;
}

function checkCounts(s: Schedule, c: Case): void {
  const counts = new Map<string, number>();
  for (const list of s.workers) for (const a of list) counts.set(formatAction(a), (counts.get(formatAction(a)) ?? 0) + 1);
  const kinds = c.name === "zb-h1" ? ["F", "B", "W"] : ["F", "B"];
  let expected = 0;
  for (let st = 0; st < c.S; st++) {
    for (let j = 0; j < c.M; j++) {
      for (let ch = 0; ch < c.v; ch++) {
        for (const kind of kinds) {
          const key = formatAction({ stage: st, kind: kind as Action["kind"], microbatch: j, chunk: ch });
          assert.equal(counts.get(key), 1, `${c.name} S=${c.S} M=${c.M} v=${c.v}: ${key}`);
          expected++;
        }
      }
    }
    assert.equal(counts.get(`${st}STEP0`), 1);
    expected++;
  }
  assert.equal([...counts.values()].reduce((a, b) => a + b, 0), expected, "no extra actions");
}

function checkOrder(s: Schedule, c: Case): void {
  s.workers.forEach((list) => {
    const pos = new Map(list.map((a, i) => [formatAction(a), i]));
    for (const a of list) {
      if (a.kind !== "F") continue;
      const b = pos.get(formatAction({ ...a, kind: "B" })) as number;
      assert.ok(pos.get(formatAction(a)) as number < b, `${c.name} S=${c.S} M=${c.M}: ${formatAction(a)} before its B`);
      if (s.splitBackward) assert.ok(b < (pos.get(formatAction({ ...a, kind: "W" })) as number), `B before W for ${formatAction(a)}`);
      assert.ok(b < (pos.get(`${a.stage}STEP0`) as number), "STEP last");
    }
  });
}

/** Live activations per stage straight from list order: +1 at F, -1 at the releasing action. */
function peaks(s: Schedule): number[] {
  const live = new Array<number>(s.stages).fill(0), peak = new Array<number>(s.stages).fill(0);
  for (const list of s.workers) for (const a of list) {
    if (a.kind === "F") { live[a.stage]++; peak[a.stage] = Math.max(peak[a.stage], live[a.stage]); }
    if (a.kind === (s.splitBackward ? "W" : "B")) live[a.stage]--;
  }
  return peak;
}

test("every generated schedule validates, with one F/B/W each, in F < B < W order", () => {
  for (const c of grid()) {
    const s = generateSchedule(c.name, { stages: c.S, microbatches: c.M, chunks: c.v });
    const r = validateSchedule(s);
    assert.ok(r.ok, `${c.name} S=${c.S} M=${c.M} v=${c.v}: ${r.errors.join("\n")}`);
    assert.equal(s.workers.length, c.S);
    checkCounts(s, c);
    checkOrder(s, c);
    assert.deepEqual(r.peakActivations, peaks(s));
  }
});

test("peak activations: GPipe M on every stage, 1F1B min(S-s, M) <= S-s, zb-h1 within 1F1B's maximum", () => {
  for (let S = 1; S <= 8; S++) {
    for (let M = 1; M <= 16; M++) {
      const g = generateSchedule("gpipe", { stages: S, microbatches: M });
      assert.deepEqual(peaks(g), new Array(S).fill(M));
      const o = peaks(generateSchedule("1f1b", { stages: S, microbatches: M }));
      o.forEach((p, s) => { assert.ok(p <= S - s); assert.equal(p, Math.min(S - s, M)); });
      // ZB-H1 keeps activations until W: same peak as 1F1B's busiest stage (stage 0), on every stage.
      const z = peaks(generateSchedule("zb-h1", { stages: S, microbatches: M }));
      z.forEach((p) => assert.ok(p <= Math.min(S, M), `zb-h1 S=${S} M=${M}: ${z}`));
    }
  }
});

test("several steps: micro-batch ids continue, forwards of step k+1 follow STEP k", () => {
  for (const name of ["gpipe", "1f1b", "zb-h1", "interleaved"]) {
    const s = generateSchedule(name, { stages: 3, microbatches: 3, chunks: name === "interleaved" ? 2 : 1, steps: 3 });
    assert.ok(validateSchedule(s).ok, name);
    for (const list of s.workers) {
      list.forEach((a, i) => {
        if (a.kind !== "F" || a.microbatch < 3) return;
        const k = Math.floor(a.microbatch / 3);
        const stepAt = list.findIndex((x) => x.kind === "STEP" && x.microbatch === k - 1);
        assert.ok(stepAt >= 0 && stepAt < i, `${name}: ${formatAction(a)} after STEP ${k - 1}`);
      });
    }
  }
});

test("interleaved places chunks on stages non-consecutively (stage s chunk c = virtual stage c*S+s)", () => {
  const s = generateSchedule("interleaved", { stages: 4, microbatches: 8, chunks: 2 });
  // The first forward of micro-batch 0 on chunk 1 of stage 0 must come after stage 3's chunk 0.
  const w0 = s.workers[0].map(formatAction);
  assert.ok(w0.includes("0F0c1"));
  assert.ok(s.workers[3].map(formatAction).includes("3F0"));
});

test("invalid combinations are rejected with clear errors", () => {
  assert.throws(() => generateSchedule("pipedream", { stages: 2, microbatches: 2 }), /unknown schedule 'pipedream'.*gpipe, 1f1b, interleaved, zb-h1, async/);
  assert.throws(() => generateSchedule("gpipe", { stages: 2, microbatches: 2, chunks: 2 }), /chunks=2 is only valid for the interleaved/);
  assert.throws(() => generateSchedule("interleaved", { stages: 4, microbatches: 6, chunks: 2 }), /multiple of the stage count: M=6, S=4; try --microbatches 4 or 8/);
  assert.throws(() => generateSchedule("1f1b", { stages: 0, microbatches: 2 }), /stages must be a positive integer, got 0/);
  assert.throws(() => generateSchedule("1f1b", { stages: 2, microbatches: 1.5 }), /microbatches must be a positive integer, got 1.5/);
});
