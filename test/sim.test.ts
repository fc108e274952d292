import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSchedule, parseAction, type Schedule } from "../src/pipeline/schedule/index.js";
import { bubbleFormula, resolveCosts, simulate } from "../src/sim/index.js";
import { timelineSvg } from "../src/report/timeline-svg.js";
import { runSim } from "../src/cli/sim.js";
import { UsageError } from "../src/cli/args.js";

const close = (a: number, b: number, msg: string): void => assert.ok(Math.abs(a - b) < 1e-9, `${msg}: ${a} vs ${b}`);

test("GPipe and 1F1B: bubble (S-1)/(M+S-1) with F = B = 1 and with F = 1, B = 2", () => {
  for (const costs of [{ forward: 1, backward: 1, weight: 0 }, { forward: 1, backward: 2, weight: 1 }]) {
    for (let S = 1; S <= 8; S++) {
      for (let M = 1; M <= 16; M++) {
        for (const name of ["gpipe", "1f1b"]) {
          const r = simulate(generateSchedule(name, { stages: S, microbatches: M }), costs);
          close(r.bubbleFraction, (S - 1) / (M + S - 1), `${name} S=${S} M=${M}`);
          close(r.makespan, (M + S - 1) * (costs.forward + costs.backward), `${name} makespan`);
          r.idle.forEach((x) => close(x, (S - 1) * (costs.forward + costs.backward), "idle per worker"));
        }
      }
    }
  }
});

test("interleaved: bubble (S-1)/(vM+S-1), i.e. bubble/ideal time exactly 1/v of 1F1B's (M a multiple of S)", () => {
  // Costs are per whole stage: each chunk action costs 1/v of them.
  const costs = { forward: 1, backward: 1, weight: 0 };
  for (let S = 1; S <= 8; S++) {
    for (let M = S; M <= 16; M += S) {
      const base = simulate(generateSchedule("1f1b", { stages: S, microbatches: M }), costs);
      const ideal = M * 2;
      for (let v = 1; v <= 3; v++) {
        const r = simulate(generateSchedule("interleaved", { stages: S, microbatches: M, chunks: v }), costs);
        close(r.bubbleFraction, (S - 1) / (v * M + S - 1), `S=${S} M=${M} v=${v}`);
        close(((r.makespan - ideal) / ideal) * v, (base.makespan - ideal) / ideal, `1/v relation S=${S} M=${M} v=${v}`);
      }
    }
  }
});

test("zb-h1: makespan M(F+B+W)+(S-1)(F+B-W) for M >= S, and strictly less bubble than 1F1B for S > 1", () => {
  for (const [f, b, w] of [[1, 2, 1], [1, 3, 1], [2, 3, 1]]) {
    const costs = { forward: f, backward: b, weight: w };
    const bi = b - w;
    for (let S = 1; S <= 8; S++) {
      for (let M = 1; M <= 16; M++) {
        const z = simulate(generateSchedule("zb-h1", { stages: S, microbatches: M }), costs);
        const o = simulate(generateSchedule("1f1b", { stages: S, microbatches: M }), costs);
        if (S > 1) assert.ok(z.bubbleFraction < o.bubbleFraction, `S=${S} M=${M}: ${z.bubbleFraction} vs ${o.bubbleFraction}`);
        else close(z.bubbleFraction, 0, "one stage");
        if (M >= S) close(z.makespan, M * (f + bi + w) + (S - 1) * (f + bi - w), `zb makespan S=${S} M=${M} costs ${f},${b},${w}`);
        else if (f === 1 && b === 2) close(z.makespan, 2 * M + S - 1 + Math.max(M, S), `zb M<S S=${S} M=${M}`);
      }
    }
  }
});

test("bubbleFormula agrees with the simulator where it claims a value, and declines otherwise", () => {
  const c = { forward: 1, backward: 2, weight: 1 };
  for (const [name, S, M, v] of [["gpipe", 4, 8, 1], ["interleaved", 4, 8, 2], ["zb-h1", 4, 8, 1], ["zb-h1", 6, 3, 1]] as const) {
    const f = bubbleFormula(name, S, M, v, resolveCosts(c, S));
    assert.ok(f);
    close(simulate(generateSchedule(name, { stages: S, microbatches: M, chunks: v }), c).bubbleFraction, f.value, name);
  }
  assert.equal(bubbleFormula("1f1b", 4, 8, 1, resolveCosts({ ...c, message: 0.1 }, 4)), null);
  assert.equal(bubbleFormula("async", 4, 8, 1, resolveCosts(c, 4)), null);
});

test("hand-computed timeline: per-stage costs and message latency", () => {
  // S=2, M=2 GPipe, stage 1 twice as slow: 0F0[0,1] 0F1[1,2] 1F0[1,3] 1F1[3,5] 1B0[5,7] 1B1[7,9] 0B0[7,8] 0B1[9,10].
  const s = generateSchedule("gpipe", { stages: 2, microbatches: 2 });
  const r = simulate(s, { forward: [1, 2], backward: [1, 2], weight: 0 });
  assert.equal(r.makespan, 10);
  assert.deepEqual(r.busy, [4, 8]);
  assert.deepEqual(r.idle, [6, 2]);
  close(r.bubbleFraction, 1 - 12 / 20, "bubble");
  const t = Object.fromEntries(r.timeline.flat().map((x) => [`${x.action.stage}${x.action.kind}${x.action.microbatch}`, [x.start, x.end]]));
  assert.deepEqual(t["1F0"], [1, 3]);
  assert.deepEqual(t["0B1"], [9, 10]);
  // Every cross-worker dependency costs m: GPipe's makespan grows by 2(S-1)m.
  for (const m of [0.5, 3]) {
    const g = simulate(generateSchedule("gpipe", { stages: 4, microbatches: 5 }), { forward: 1, backward: 2, weight: 0, message: m });
    close(g.makespan, (5 + 3) * 3 + 2 * 3 * m, `message ${m}`);
  }
});

test("simulate rejects a deadlocked schedule with the grid, and bad costs by name", () => {
  const bad: Schedule = {
    name: "bad", stages: 2, microbatches: 1, chunks: 1, steps: 1, splitBackward: false, synchronous: true,
    stageToWorker: [0, 1], workers: [["0B0", "0F0", "0STEP0"], ["1F0", "1B0", "1STEP0"]].map((l) => l.map(parseAction)),
  };
  assert.throws(() => simulate(bad), /deadlock in schedule 'bad'[\s\S]*0B0\s+\| 1B0/);
  const s = generateSchedule("1f1b", { stages: 2, microbatches: 2 });
  assert.throws(() => simulate(s, { forward: [1, 2, 3], backward: 2, weight: 1 }), /forward has 3 per-stage values for 2 stages/);
  assert.throws(() => simulate(s, { forward: 1, backward: 1, weight: 2 }), /weight-gradient time 2 of stage 0 exceeds its backward time 1/);
  assert.throws(() => simulate(s, { forward: -1, backward: 1, weight: 0 }), /forward of stage 0 is -1/);
});

test("timeline SVG: one box per action with its compact name, legend and title", () => {
  const s = generateSchedule("zb-h1", { stages: 3, microbatches: 4 });
  const r = simulate(s);
  const svg = timelineSvg(r, { title: "zb & co" });
  assert.ok(svg.startsWith("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  assert.ok(svg.trimEnd().endsWith("</svg>"));
  assert.ok(svg.includes("zb &amp; co"));
  const titles = [...svg.matchAll(/<title>([^:<]+):/g)].map((m) => m[1]).sort();
  const all = s.workers.flat().map((a) => `${a.stage}${a.kind}${a.microbatch}`).sort();
  assert.deepEqual(titles, all);
  for (const text of ["F forward", "B input gradient", "W weight gradient", "STEP optimizer update", "worker 2 · stage 2"]) {
    assert.ok(svg.includes(text), text);
  }
  // Boxes per kind: F blue, B green, W orange.
  assert.equal((svg.match(/fill="#f58518"/g) ?? []).length, 3 * 4 + 1);
});

async function capture(argv: string[]): Promise<[number, string]> {
  const write = process.stdout.write.bind(process.stdout);
  let out = "";
  process.stdout.write = ((chunk: string | Uint8Array) => { out += String(chunk); return true; }) as typeof process.stdout.write;
  try { return [await runSim(argv), out]; } finally { process.stdout.write = write; }
}

test("pipewright sim prints JSON with bubble, peaks, delays, and writes the SVG", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-sim-"));
  const svg = join(dir, "t.svg");
  const [code, out] = await capture(["--schedule", "1f1b", "--stages", "4", "--microbatches", "8", "--svg", svg, "--json"]);
  assert.equal(code, 0);
  const j = JSON.parse(out) as Record<string, unknown>;
  close(j.bubble_fraction as number, 3 / 11, "bubble");
  assert.deepEqual(j.peak_activations, [4, 3, 2, 1]);
  assert.equal(j.makespan, 33);
  assert.ok(readFileSync(svg, "utf8").includes("<svg"));
  const [, a] = await capture(["--schedule=async", "--stages=4", "--microbatches=2", "--json"]);
  const ja = JSON.parse(a) as Record<string, unknown>;
  assert.deepEqual(ja.delays, [4, 3, 2, 1]);
  assert.deepEqual(ja.expected_delays, [4, 3, 2, 1]);
  const [, text] = await capture(["--schedule", "async", "--stages", "3", "--microbatches", "1"]);
  assert.match(text, /delays per stage\s+5 3 1/);
});

test("pipewright sim: bad values are usage errors listing what is allowed", async () => {
  await assert.rejects(capture(["--schedule", "pipedream"]), (e: Error) => e instanceof UsageError && /gpipe, 1f1b, interleaved, zb-h1, async/.test(e.message));
  await assert.rejects(capture(["--schedule", "interleaved", "--stages", "4", "--microbatches", "6", "--chunks", "2"]),
    (e: Error) => e instanceof UsageError && /multiple of the stage count/.test(e.message));
  await assert.rejects(capture(["--cost-f", "1,2", "--stages", "4"]), (e: Error) => e instanceof UsageError && /one for every stage or exactly 4/.test(e.message));
  await assert.rejects(capture(["--cost-b", "x"]), (e: Error) => e instanceof UsageError && /'x' is not a number/.test(e.message));
  await assert.rejects(capture(["--workers", "5", "--stages", "4"]), (e: Error) => e instanceof UsageError && /--workers 5 exceeds --stages 4/.test(e.message));
  await assert.rejects(capture(["--stages", "0"]), (e: Error) => e instanceof UsageError && /at least 1/.test(e.message));
});

test("weight gradients once per step: GPipe S=2 M=8, F=1, B=2 (B 1 + W 1) by hand; per-stage STEP costs", () => {
  const s = generateSchedule("gpipe", { stages: 2, microbatches: 8, weightGrads: "step" });
  // Stage 0 forwards 0..8, stage 1 forwards 1..9 and input gradients 9..17; stage 0's B_j follows
  // stage 1's, the last ending at 18; then stage 0's eight W's (8) and its STEP (3): 29. Stage 1's
  // W's run 17..25 and its STEP (1) ends at 26.
  const r = simulate(s, { forward: 1, backward: 2, weight: 1, step: [3, 1] });
  assert.equal(r.makespan, 29);
  assert.deepEqual(r.busy, [8 + 8 + 8 + 3, 8 + 8 + 8 + 1]);
  assert.deepEqual(r.peakActivations, [8, 8]);
  assert.throws(() => simulate(s, { forward: 1, backward: 2, weight: 1, step: [1, 2, 3] }), /step has 3 per-stage values for 2 stages/);
});

// ---- shared cores, message sizes, receive cost, start skew, sender slice (src/sim/shared-cores.ts)

const at = (r: ReturnType<typeof simulate>): Record<string, [number, number]> =>
  Object.fromEntries(r.timeline.flat().map((x) => [`${x.action.stage}${x.action.kind}${x.action.microbatch}`, [x.start, x.end]]));
const near = (a: [number, number], b: [number, number], msg: string): void => { close(a[0], b[0], `${msg} start`); close(a[1], b[1], `${msg} end`); };

test("shared cores: 2 workers on 1 core, GPipe S=2 M=2, F=1, B=2, hand-computed", () => {
  // t=0..1 0F0 alone; 1..3 0F1 and 1F0 share the core (rate 1/2); 3..4 1F1; 4..6 1B0; 6..10 1B1
  // and 0B0 share it; 10..12 0B1. The core never idles after t=0: makespan = total work 12.
  const r = simulate(generateSchedule("gpipe", { stages: 2, microbatches: 2 }), { forward: 1, backward: 2, weight: 0, cores: 1 });
  const t = at(r);
  const want: Record<string, [number, number]> = { "0F0": [0, 1], "0F1": [1, 3], "1F0": [1, 3], "1F1": [3, 4], "1B0": [4, 6], "1B1": [6, 10], "0B0": [6, 10], "0B1": [10, 12] };
  for (const [k, v] of Object.entries(want)) near(t[k], v, k);
  close(r.makespan, 12, "makespan");
});

test("shared cores: background load slows every action; cores >= workers is the plain list-order run", () => {
  // GPipe S=2 M=1, F = B = 1: no two actions ever overlap. Background 2 on 2 cores: each runs at 2/3.
  const s = generateSchedule("gpipe", { stages: 2, microbatches: 1 });
  close(simulate(s, { forward: 1, backward: 1, weight: 0, cores: 2 }).makespan, 4, "no load");
  close(simulate(s, { forward: 1, backward: 1, weight: 0, cores: 2, background: 2 }).makespan, 6, "background 2");
  // Oracle: the event-driven run with enough cores gives execute()'s timeline exactly (a start skew
  // of 0 forces the event-driven engine).
  for (const [name, S, M, v] of [["gpipe", 3, 5, 1], ["1f1b", 4, 8, 1], ["interleaved", 2, 4, 2], ["zb-h1", 3, 6, 1]] as const) {
    const sch = generateSchedule(name, { stages: S, microbatches: M, chunks: v });
    const costs = { forward: [1, 1.5, 2, 0.5].slice(0, S), backward: [2, 3, 2.5, 1].slice(0, S), weight: [1, 1, 1, 0.5].slice(0, S), step: 0.25, message: 0.3 };
    const plain = simulate(sch, costs), shared = simulate(sch, { ...costs, cores: S, start: new Array<number>(S).fill(0) });
    assert.equal(shared.timeline.length, plain.timeline.length);
    shared.timeline.forEach((row, w) => row.forEach((x, i) => {
      assert.equal(x.action, plain.timeline[w][i].action);
      near([x.start, x.end], [plain.timeline[w][i].start, plain.timeline[w][i].end], `${name} worker ${w} #${i}`);
    }));
  }
});

test("shared cores: 3 workers on 2 cores run at 2/3 while all three compute, never above the cores", () => {
  const s = generateSchedule("1f1b", { stages: 3, microbatches: 6 });
  const one = simulate(s, { forward: 1, backward: 2, weight: 0 });
  const r = simulate(s, { forward: 1, backward: 2, weight: 0, cores: 2 });
  // Lower bounds: the one-core-per-worker run, and all the work on 2 cores.
  assert.ok(r.makespan >= one.makespan - 1e-9 && r.makespan >= (6 * 3 * 3) / 2 - 1e-9, `makespan ${r.makespan}`);
  assert.ok(r.makespan > one.makespan + 1e-6, "sharing costs time");
  // Between two events n actions run, each at min(1, 2/n): summed over the timeline that is exactly
  // the work 6 micro-batches x 3 stages x (F + B) = 54, and never more than 2 cores' worth at once.
  const events = [...new Set(r.timeline.flat().flatMap((x) => [x.start, x.end]))].sort((a, b) => a - b);
  let work = 0, all3 = 0;
  for (let i = 0; i + 1 < events.length; i++) {
    const mid = (events[i] + events[i + 1]) / 2, dt = events[i + 1] - events[i];
    const n = r.timeline.flat().filter((x) => x.start < mid && mid < x.end).length;
    work += dt * n * Math.min(1, 2 / Math.max(n, 1));
    if (n === 3) all3 += dt;
  }
  close(work, 54, "work done");
  assert.ok(all3 > 0, "the three workers do compute at once");
});

test("message size, receive cost and start skew, hand-computed", () => {
  // GPipe S=2 M=1, F = B = 1. Message 0.5 + 0.001/byte x 1000 bytes = 1.5; receiving costs 0.25 in
  // the consuming action. 0F0 [0,1]; 1F0 ready 2.5, lasts 1.25 -> 3.75; 1B0 [3.75,4.75]; 0B0 ready
  // 6.25, lasts 1.25 -> 7.5.
  const s = generateSchedule("gpipe", { stages: 2, microbatches: 1 });
  const c = { forward: 1, backward: 1, weight: 0, message: 0.5, messagePerByte: 0.001, messageBytes: [1000, 0], receive: 0.25 };
  const t = at(simulate(s, c));
  near(t["1F0"], [2.5, 3.75], "1F0");
  near(t["0B0"], [6.25, 7.5], "0B0");
  // Worker 1 free only from 3: 1F0 [3,4.25], 1B0 [4.25,5.25], 0B0 [6.75,8].
  const k = at(simulate(s, { ...c, start: [0, 3] }));
  near(k["1F0"], [3, 4.25], "1F0 skewed");
  near(k["0B0"], [6.75, 8], "0B0 skewed");
  assert.throws(() => simulate(s, { ...c, messageBytes: [1, 2, 3] }), /messageBytes has 3 per-stage values for 2 stages/);
  assert.throws(() => simulate(s, { ...c, cores: 0.5 }), /cores 0.5 must be at least 1/);
});

test("sender slice: a message leaves when its sender waits, or after the slice while it computes", () => {
  // 1F1B S=2 M=2, F = B = 1, message 0 and slice 0.5. Worker 0: 0F0 [0,1] then 0F1 [1,2] at once,
  // so a1:0 leaves at min(end of that run = 2, 1 + 0.5) = 1.5: 1F0 [1.5,2.5], 1B0 [2.5,3.5]; a1:1
  // left at 2 (worker 0 then waits): 1F1 [3.5,4.5]; g0:0 held by worker 1 computing 1F1: leaves
  // at 4 -> 0B0 [4,5]; 1B1 [4.5,5.5], g0:1 leaves at 5.5 (worker 1 done) -> 0B1 [5.5,6.5].
  const s = generateSchedule("1f1b", { stages: 2, microbatches: 2 });
  const t = at(simulate(s, { forward: 1, backward: 1, weight: 0, senderSlice: 0.5 }));
  near(t["1F0"], [1.5, 2.5], "1F0");
  near(t["1F1"], [3.5, 4.5], "1F1");
  near(t["0B0"], [4, 5], "0B0");
  near(t["0B1"], [5.5, 6.5], "0B1");
});

test("costs per virtual stage: S*v values are each chunk's own, S values split evenly", () => {
  const s = generateSchedule("interleaved", { stages: 2, microbatches: 4, chunks: 2 });
  const even = simulate(s, { forward: [2, 4], backward: [4, 8], weight: 0 });
  const per = simulate(s, { forward: [1, 2, 1, 2], backward: [2, 4, 2, 4], weight: [0, 0, 0, 0] });
  close(per.makespan, even.makespan, "same costs, two spellings");
  const skewed = simulate(s, { forward: [1, 2, 3, 2], backward: [2, 4, 2, 4], weight: [0, 0, 0, 0] });
  assert.ok(skewed.makespan > per.makespan, "a slower chunk 0 of stage 0 lengthens the step");
});

// ---- costs measured from a processes step's records (src/sim/measured.ts)

import { fitBackground, fitSlowdowns, measuredStep, replayCosts } from "../src/sim/index.js";
import { execute } from "../src/pipeline/schedule/index.js";
import type { ActionRecord, RankTimings } from "../src/pipeline/runtime/action-records.js";

/** An action record: ms times, CPU in ms (stored as µs). */
function rec(kind: ActionRecord["kind"], stage: number, mb: number, start: number, end: number, cpuMs = end - start, run = 1): ActionRecord {
  return { kind, stage, chunk: 0, microbatch: mb, run, start, end, cpu: cpuMs * 1000 };
}

test("measuredStep: mean CPU per kind, idle-receiver latency, busy-sender slice, skew and exchange from hand-made records", () => {
  // GPipe S=2 M=2, weights once per step (B input-gradient only, a stacked W run of 2 at the end).
  const s = generateSchedule("gpipe", { stages: 2, microbatches: 2, weightGrads: "step" });
  // Rank 0: 0F0 [1000,1002] sends a1:0, runs 0F1 at once (busy to 1006): a1:0 arrives at 1005 while
  // it computes, held 3 ms after 0F0's end. a1:1 leaves at 1006 with rank 0 then waiting; rank 1
  // (idle after 1F0) takes it at 1006.5: a latency of 0.5. Rank 1 runs 1F1 to 1B1, W, STEP back to
  // back from 1006.6 to 1035.6, so g0:0 (arrives 1017.1, 1B0 ended 1016.6) and g0:1 (arrives 1024.1,
  // 1B1 ended 1021.6) are held 0.5 and 2.5. Slice = mean held 2 - mean latency 0.5 = 1.5.
  const r0: RankTimings = {
    rank: 0, begin: 1000, listDone: 1030.3, end: 1036.7,
    actions: [rec("F", 0, 0, 1000, 1002), rec("F", 0, 1, 1002, 1006), rec("B", 0, 0, 1017.2, 1018.2), rec("B", 0, 1, 1024.2, 1025.2),
      rec("W", 0, 0, 1025.2, 1029.2, 4, 2), rec("STEP", 0, 0, 1029.2, 1030.2)],
    sends: [{ key: "a1:0", bytes: 64, at: 1001.9, ms: 0.05 }, { key: "a1:1", bytes: 64, at: 1005.9, ms: 0.1 }],
    receives: [{ key: "g0:0", bytes: 64, at: 1017.1, ms: 0.1 }, { key: "g0:1", bytes: 64, at: 1024.1, ms: 0.1 }],
  };
  const r1: RankTimings = {
    rank: 1, begin: 1001, listDone: 1035.7, end: 1037,
    actions: [rec("F", 1, 0, 1005.1, 1006.1), rec("F", 1, 1, 1006.6, 1010.6), rec("B", 1, 0, 1010.6, 1016.6), rec("B", 1, 1, 1016.6, 1021.6),
      rec("W", 1, 0, 1021.6, 1029.6, 8, 2), rec("STEP", 1, 0, 1029.6, 1035.6)],
    sends: [{ key: "g0:0", bytes: 64, at: 1016.5, ms: 0.05 }, { key: "g0:1", bytes: 64, at: 1021.5, ms: 0.05 }],
    receives: [{ key: "a1:0", bytes: 64, at: 1005, ms: 0.1 }, { key: "a1:1", bytes: 64, at: 1006.5, ms: 0.05 }],
  };
  const m = measuredStep(s, [r0, r1], { cores: 2, perByte: 0, messageBytes: 64 });
  const c = m.costs;
  const ms = (x: number | readonly number[] | undefined): number[] => (x as number[]).map((v) => Number((v * 1e3).toFixed(9)));
  assert.deepEqual(ms(c.forward), [3, 2.5]);
  // Full backward = B + W share per micro-batch: stage 0 1 + 2, stage 1 5.5 + 4.
  assert.deepEqual(ms(c.weight), [2, 4]);
  assert.deepEqual(ms(c.backward), [3, 9.5]);
  assert.deepEqual(ms(c.step), [1, 6]);
  const r6 = (xs: number[]): number[] => xs.map((x) => Number((x * 1e3).toFixed(6))).sort((a, b) => a - b);
  assert.deepEqual(r6(m.messageSamples.latency), [0.5]);
  assert.deepEqual(r6(m.messageSamples.held), [0.5, 2.5, 3]);
  close(c.message!, 0.5e-3, "latency");
  close(c.senderSlice!, 1.5e-3, "slice");
  close(c.receive!, 0.1e-3, "receive: median of 0.05, 0.1, 0.1, 0.1");
  assert.deepEqual(c.start!.map((x) => Number((x * 1e3).toFixed(9))), [0, 1]);
  close(m.exchange, 1e-3, "exchange: rank 0 left at 1036.7, the last list ended at 1035.7");
  // Every action started when its input was taken in and ran at its CPU time, but 1F1, which waited
  // 0.05 ms after taking a1:1 in: a little other load.
  assert.ok(c.background! > 0 && c.background! < 0.05, `background ${c.background}`);
  close(m.slowdown, 1, "slowdown");
  // The model replays: the simulated step is a number, and more other load only slows it.
  const t = simulate(s, c).makespan;
  assert.ok(t > 0 && simulate(s, { ...c, background: 2 }).makespan > t);
  // Replayed with each action's and message's own time (from 0, no skew): rank 1 1F0 at 2 + 3.15
  // (a1:0 sent 1001.95, taken 1005.1) for 1 ms, 1F1 at 6 + 0.55 for 4, 1B0 6, 1B1 5, two W of 4,
  // STEP 6: ends at 35.55. Rank 0: 0B0 at 16.55 + 0.65, 0B1 at 21.55 + 2.65, W's, STEP to 30.2.
  const replay = execute(s, replayCosts(s, [r0, r1]));
  const ends = replay.timeline.map((row) => row[row.length - 1].end * 1e3);
  close(ends[0], 30.2, "rank 0 replayed");
  close(ends[1], 35.55, "rank 1 replayed");
});

test("fitBackground: the load that slows actions as measured under fair sharing", () => {
  const one = (wall: number, cpu: number): RankTimings[] => [{ rank: 0, begin: 0, listDone: wall, end: wall, actions: [rec("F", 0, 0, 0, wall, cpu)], sends: [], receives: [] }];
  close(fitBackground(one(4, 4), 2), 0, "not slowed");
  // A lone action at half speed on 2 cores: 2 / (1 + B) = 1/2, B = 3.
  assert.ok(Math.abs(fitBackground(one(4, 2), 2) - 3) < 1e-6);
  // Two ranks computing at once on one core each run at 1/2 with no other load.
  const two: RankTimings[] = [0, 1].map((w) => ({ rank: w, begin: 0, listDone: 4, end: 4, actions: [rec("F", w, 0, 0, 4, 2)], sends: [], receives: [] }));
  assert.ok(fitBackground(two, 1) < 1e-6);
  assert.ok(Math.abs(fitBackground(two, 2) - 2) < 1e-6, "on 2 cores: 2 / (2 + B) = 1/2");
});

test("pinned ranks: a per-worker slowdown stretches that worker's actions only; fitSlowdowns measures it", () => {
  // GPipe S=2 M=1, F = B = 1, worker 0 at half speed: 0F0 [0,2], 1F0 [2,3], 1B0 [3,4], 0B0 [4,6].
  const t = at(simulate(generateSchedule("gpipe", { stages: 2, microbatches: 1 }), { forward: 1, backward: 1, weight: 0, slowdown: [2, 1] }));
  near(t["0F0"], [0, 2], "0F0");
  near(t["1F0"], [2, 3], "1F0");
  near(t["0B0"], [4, 6], "0B0");
  assert.throws(() => simulate(generateSchedule("gpipe", { stages: 2, microbatches: 1 }), { forward: 1, backward: 1, weight: 0, slowdown: [0.5, 1] }), /slowdown 0.5 of worker 0 must be a finite number >= 1/);
  // Rank 0: 4 ms of wall for 2 of CPU; rank 1 ran at its CPU time.
  const ranks: RankTimings[] = [[4, 2], [3, 3]].map(([wall, cpu], w) => ({ rank: w, begin: 0, listDone: wall, end: wall, actions: [rec("F", w, 0, 0, wall, cpu)], sends: [], receives: [] }));
  assert.deepEqual(fitSlowdowns(ranks), [2, 1]);
});

test("pipewright sim --cores/--background: the shared-cores makespan; bad values name the flag", async () => {
  const [code, out] = await capture(["--schedule", "gpipe", "--stages", "2", "--microbatches", "2", "--cost-f", "1", "--cost-b", "2", "--cores", "1", "--json"]);
  assert.equal(code, 0);
  const j = JSON.parse(out) as Record<string, unknown>;
  assert.equal(j.makespan, 12);
  assert.equal(j.bubble_formula, null);
  const [, bg] = await capture(["--schedule", "gpipe", "--stages", "2", "--microbatches", "1", "--cost-f", "1", "--cost-b", "1", "--cores", "2", "--background", "2", "--json"]);
  assert.equal((JSON.parse(bg) as { makespan: number }).makespan, 6);
  await assert.rejects(capture(["--cores", "0.5"]), (e: Error) => e instanceof UsageError && /--cores/.test(e.message));
});
