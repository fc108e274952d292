// PTD-P: pipeline x tensor x data parallel in one run. The oracle is single-device training (the
// inline executor on one stage): each layout, with and without sequence parallelism, must give its
// weights within 1e-5 (relative) after 3 steps: tensor-parallel sums run in another order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MPI_ENV, mpiSkipReason, mpirunArgs } from "./mpi-helpers.js";
import type { ModelSpec } from "../src/nn/models/index.js";

const SCRIPT = fileURLToPath(new URL("./lib-ptdp-script.js", import.meta.url));

interface Result { losses: number[]; weights: [string, number[]][]; optimizer: string }

const fromBits = (b: number[]): Float32Array => new Float32Array(Uint32Array.from(b).buffer);

function run(dir: string, executor: string, [P, T, D]: number[], sp: boolean, schedule = "1f1b"): Result {
  const out = join(dir, `${executor}-${P}${T}${D}-${sp}-${schedule}.json`);
  const r = spawnSync(process.execPath, [SCRIPT, executor, String(P), String(T), String(D), sp ? "sp" : "no-sp", schedule, out], { encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(readFileSync(out, "utf8")) as Result;
}

function assertClose(got: Result, want: Result, what: string): void {
  assert.deepEqual(got.weights.map(([k]) => k).sort(), want.weights.map(([k]) => k).sort(), `${what}: names`);
  const w = new Map(want.weights);
  for (const [k, b] of got.weights) {
    const g = fromBits(b), r = fromBits(w.get(k)!);
    assert.equal(g.length, r.length, `${what}: ${k} size`);
    g.forEach((v, i) => assert.ok(Math.abs(v - r[i]) <= 1e-5 * Math.max(1, Math.abs(r[i])), `${what}: ${k}[${i}]: ${v} vs ${r[i]}`));
  }
}

test("PTD-P on threads equals single-device training within 1e-5 for (P, T, D) in (2,2,1), (2,1,2), (1,2,2), (2,2,2), with and without sequence parallelism", () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-ptdp-"));
  try {
    const ref = run(dir, "inline", [1, 1, 1], false);
    for (const layout of [[2, 2, 1], [2, 1, 2], [1, 2, 2], [2, 2, 2]]) {
      for (const sp of [false, true]) {
        if (sp && layout[1] === 1) continue; // sequence parallelism needs T > 1
        const got = run(dir, "threads", layout, sp);
        assertClose(got, ref, `threads (${layout.join(",")})${sp ? " sp" : ""}`);
        // The run did split the work: its sums ran in another order than the single device's.
        assert.notDeepEqual(got.weights, ref.weights);
      }
    }
    // Interleaved (two chunks per worker) with T = 2 too.
    assertClose(run(dir, "threads", [2, 2, 1], true, "interleaved"), ref, "threads (2,2,1) sp interleaved");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const skip = mpiSkipReason();

// One worker of T = 2 ranks; pipeline messages between tensor groups (their collectives run while
// pipeline messages arrive); and tensor, pipeline and data groups together on 8 ranks.
test("PTD-P threads == processes bit for bit for (P, T, D) in (1,2,1), (2,2,1) sp, (2,2,2) sp: weights, optimizer state, losses", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-ptdp-"));
  try {
    for (const [layout, sp] of [[[1, 2, 1], false], [[2, 2, 1], true], [[2, 2, 2], true]] as const) {
      const name = `(${layout.join(",")})${sp ? " sp" : ""}`;
      const threads = run(dir, "threads", [...layout], sp);
      const out = join(dir, "processes.json");
      const ranks = layout[0] * layout[1] * layout[2];
      const p = spawnSync("mpirun", [...mpirunArgs(ranks, "vader"), process.execPath, SCRIPT, "processes", ...layout.map(String), sp ? "sp" : "no-sp", "1f1b", out],
        { encoding: "utf8", env: { ...process.env, ...MPI_ENV }, timeout: 180_000 });
      assert.equal(p.status, 0, `${name}: status ${p.status}: ${p.stderr}${p.stdout}`);
      const processes = JSON.parse(readFileSync(out, "utf8")) as Result;
      assert.deepEqual(processes.weights, threads.weights, `${name}: weights`);
      assert.equal(processes.optimizer, threads.optimizer, `${name}: optimizer state`);
      assert.deepEqual(processes.losses, threads.losses, `${name}: losses`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("resharding: a (2,2,2) run's weights and optimizer state resume as (4,1,2), as (2,2,2) and on one device with identical bits", async () => {
  const { createModel } = await import("../src/nn/models/index.js");
  const { ThreadsExecutor } = await import("../src/pipeline/runtime/threads.js");
  const { InlineExecutor } = await import("../src/pipeline/runtime/inline.js");
  const { toPlain } = await import("../src/optim/index.js");
  const { SPEC, SEED, setupOf, train } = await import("./lib-ptdp-script.js");
  const units = createModel(SPEC, SEED).units.length;
  const first = await ThreadsExecutor.create(setupOf({ P: 2, T: 2, D: 2, sp: true, schedule: "1f1b" }, units), createModel(SPEC, SEED).stateDict(), 2);
  await train(first);
  const state = await first.stateDict();
  const opt = toPlain(await first.optimizerState([...state.keys()]));
  await first.close();
  const bitsOf = (m: ReadonlyMap<string, { data: Float32Array }>): [string, number[]][] =>
    [...m].map(([k, t]) => [k, [...new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length)]] as [string, number[]]).sort(([a], [b]) => a.localeCompare(b));
  const want = bitsOf(state);
  for (const l of [{ P: 4, T: 1, D: 2 }, { P: 2, T: 2, D: 2 }]) {
    const ex = await ThreadsExecutor.create({ ...setupOf({ ...l, sp: false, schedule: "1f1b" }, units), optimizerState: opt }, state, l.D);
    const got = await ex.stateDict();
    const gotOpt = toPlain(await ex.optimizerState([...got.keys()]));
    await ex.close();
    assert.deepEqual(bitsOf(got), want, `(${l.P},${l.T},${l.D}) weights`);
    const tensors = (o: typeof opt): [string, number[]][] => bitsOf(new Map(o.tensors.map(([k, d]) => [k, { data: d }])));
    assert.deepEqual(tensors(gotOpt), tensors(opt), `(${l.P},${l.T},${l.D}) optimizer state`);
  }
  const one = createModel(SPEC, SEED);
  one.loadStateDict(state);
  const inline = new InlineExecutor(one, setupOf({ P: 1, T: 1, D: 1, sp: false, schedule: "1f1b" }, units));
  assert.deepEqual(bitsOf(await inline.stateDict()), want, "one device");
  await inline.close();
});

test("bad tensor-parallel input: T not dividing the heads, a model without transformer blocks; one line naming the numbers", async () => {
  const { ThreadsExecutor } = await import("../src/pipeline/runtime/threads.js");
  const { createModel } = await import("../src/nn/models/index.js");
  const { setupOf, SPEC, SEED } = await import("./lib-ptdp-script.js");
  const units = createModel(SPEC, SEED).units.length;
  await assert.rejects(ThreadsExecutor.create(setupOf({ P: 1, T: 3, D: 1, sp: false, schedule: "1f1b" }, units), createModel(SPEC, SEED).stateDict()),
    /--tp 3 must divide the attention heads 2/);
  const mlp: ModelSpec = { name: "mlp", input: 4, hidden: [4], classes: 2 };
  const setup = { ...setupOf({ P: 1, T: 2, D: 1, sp: false, schedule: "1f1b" }, 3), model: mlp };
  await assert.rejects(ThreadsExecutor.create(setup, createModel(mlp, 0).stateDict()), /--tp 2 needs a transformer model \(gpt, vit\)/);
});

// Megatron's scatter/gather between stages: each tensor rank sends its 1/T part of the activation
// (and input gradient) to its peer, which all-gathers. The oracle for the bytes is the model's shape:
// N sequences x CTX tokens x width float32 cross the one stage boundary forward and back per step.
test("PTD-P on threads: activations and gradients between stages travel once per tensor group (T ranks x 1/T each), with and without sequence parallelism", async () => {
  const { ThreadsExecutor } = await import("../src/pipeline/runtime/threads.js");
  const { createModel } = await import("../src/nn/models/index.js");
  const { batches, setupOf, CTX, N, SPEC } = await import("./lib-ptdp-script.js");
  const { splitBatch } = await import("../src/data/microbatch.js");
  const whole = N * CTX * (SPEC as { dim: number }).dim * 4;
  for (const [T, sp] of [[1, false], [2, false], [2, true]] as const) {
    const model = createModel(SPEC, 5);
    const setup = setupOf({ P: 2, T, D: 1, sp, schedule: "1f1b" }, model.units.length);
    const ex = await ThreadsExecutor.create({ ...setup, instrumentation: { recordActions: true } }, model.stateDict());
    try {
      const parts = splitBatch(batches()[0], 4);
      await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / (N * CTX) });
      const ranks = ex.stepTimings()!;
      assert.equal(ranks.length, 2 * T);
      const sent = (r: (typeof ranks)[number], kind: string): number => r.sends.filter((s) => s.key.startsWith(kind)).reduce((n, s) => n + s.bytes, 0);
      for (const [id, r] of ranks.entries()) {
        const worker = Math.floor(id / T);
        // Worker 0 sends activations forward, worker 1 gradients back: each tensor rank its 1/T.
        assert.equal(sent(r, "a"), worker === 0 ? whole / T : 0, `T=${T}${sp ? " sp" : ""}, thread ${id}: activation bytes`);
        assert.equal(sent(r, "g"), worker === 1 ? whole / T : 0, `T=${T}${sp ? " sp" : ""}, thread ${id}: gradient bytes`);
      }
    } finally {
      await ex.close();
    }
  }
});
