// Global gradient-norm clipping in pipelines. The oracle is single-device training written out here
// (forward on the whole mini-batch, backward, clipGradNorm over every parameter, optimizer step):
// every pipeline layout with setup.clipGradNorm must give its weights within 1e-5 after 3 steps
// whose unclipped norm exceeds the bound (so the clip is active each time). The norm is summed from
// per-rank parts in a fixed order, so threads and processes give the inline executor's bits.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { backward } from "../src/autograd/engine.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { clipGradNorm, createOptimizer } from "../src/optim/index.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import { checkClipping } from "../src/pipeline/runtime/grad-clip.js";
import { formatAction, generateSchedule, validateSchedule, withReplicas } from "../src/pipeline/schedule/index.js";
import { MAIN, MPI_ENV, mpiSkipReason, mpirunArgs } from "./mpi-helpers.js";
import { createPipeline } from "../src/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { batches, OPT, SEED, SPEC, setupOf, train, type Layout } from "./lib-ptdp-script.js";

const SCRIPT = fileURLToPath(new URL("./lib-ptdp-script.js", import.meta.url));
const MAX_NORM = 0.3;

type Result = Awaited<ReturnType<typeof train>>;
const fromBits = (b: number[]): Float32Array => new Float32Array(Uint32Array.from(b).buffer);
const bits = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];

/** Single-device training with clipGradNorm: the weights after the steps, and each step's unclipped norm. */
function oracle(maxNorm: number): { weights: Map<string, Float32Array>; norms: number[] } {
  const model = createModel(SPEC, SEED);
  model.train();
  const opt = createOptimizer(OPT, model.namedParameters());
  const norms: number[] = [];
  for (const b of batches()) {
    opt.zeroGrad();
    backward(crossEntropyLoss(model.forward(b.x), b.y));
    norms.push(clipGradNorm(model.parameters(), maxNorm));
    opt.step();
  }
  return { weights: new Map([...model.stateDict()].map(([k, t]) => [k, t.data.slice()])), norms };
}

const ref = oracle(MAX_NORM);

function setup(l: Partial<Layout> & { P: number }, maxNorm = MAX_NORM): PipelineSetup {
  return { ...setupOf({ T: 1, D: 1, sp: false, schedule: "1f1b", ...l }, createModel(SPEC, SEED).units.length), clipGradNorm: maxNorm };
}

async function inline(s: PipelineSetup, D = 1): Promise<Result> {
  return train(await InlineExecutor.create(createModel(SPEC, SEED), s, D));
}

async function threads(s: PipelineSetup, D = 1): Promise<Result> {
  const ex = await ThreadsExecutor.create(s, createModel(SPEC, SEED).stateDict(), D);
  try { return await train(ex); } finally { await ex.close(); }
}

/** The same bits: losses, weights (in name order: layouts list them differently) and optimizer state. */
function assertSame(got: Result, want: Result, what: string): void {
  const sorted = (r: Result): Result => ({ ...r, weights: [...r.weights].sort(([a], [b]) => a.localeCompare(b)) });
  assert.deepEqual(sorted(got), sorted(want), what);
}

function assertClose(got: Result, what: string): void {
  assert.deepEqual(got.weights.map(([k]) => k).sort(), [...ref.weights.keys()].sort(), `${what}: names`);
  for (const [k, b] of got.weights) {
    const g = fromBits(b), r = ref.weights.get(k)!;
    g.forEach((v, i) => assert.ok(Math.abs(v - r[i]) <= 1e-5 * Math.max(1, Math.abs(r[i])), `${what}: ${k}[${i}]: ${v} vs ${r[i]}`));
  }
}

test("the oracle's clip is active at every step (the unclipped norm exceeds the bound), and changes the result", () => {
  for (const n of ref.norms) assert.ok(n > 2 * MAX_NORM, `norm ${n} vs bound ${MAX_NORM}`);
  const free = oracle(1e9);
  for (const [k, w] of ref.weights) assert.notDeepEqual(bits(free.weights.get(k)!), bits(w), k);
});

test("clipping 1f1b on inline and threads (P = 2) equals single-device clipGradNorm within 1e-5; threads == inline bit for bit", async () => {
  const a = await inline(setup({ P: 2 }));
  assertClose(a, "inline 1f1b");
  assertSame(await threads(setup({ P: 2 })), a, "threads == inline");
});

test("clipping with 2 replicas (inline, threads) and with V schedules (two stages per worker) equals single-device clipGradNorm", async () => {
  const a = await inline(setup({ P: 2 }), 2);
  assertClose(a, "inline 1f1b D = 2");
  assertSame(await threads(setup({ P: 2 }), 2), a, "threads D = 2 == inline D = 2");
  for (const schedule of ["zb-v", "dualpipev", "interleaved"]) {
    const v = await inline(setup({ P: 2, schedule }));
    assertClose(v, `inline ${schedule}`);
    assertClose(await inline(setup({ P: 2, schedule }), 2), `inline ${schedule} D = 2`);
    assertSame(await threads(setup({ P: 2, schedule })), v, `threads ${schedule} == inline`);
  }
});

test("clipping PTD-P (P, T, D) = (2,2,1), (2,2,2), (1,2,1), with and without sequence parallelism, on threads equals single-device clipGradNorm within 1e-5", async () => {
  for (const sp of [false, true]) {
    assertClose(await threads(setup({ P: 2, T: 2, sp })), `threads (2,2,1)${sp ? " sp" : ""}`);
    assertClose(await threads(setup({ P: 2, T: 2, D: 2, sp }), 2), `threads (2,2,2)${sp ? " sp" : ""}`);
    assertClose(await threads(setup({ P: 1, T: 2, sp })), `threads (1,2,1)${sp ? " sp" : ""}`);
  }
});

test("a clip bound that is not a finite number > 0, or an asynchronous schedule: one line naming it", () => {
  for (const x of [0, -1, Number.NaN]) assert.throws(() => checkClipping(setup({ P: 2 }, x)), new RegExp(`: --clip-grad-norm must be > 0, got ${String(x)}$`));
  assert.throws(() => checkClipping(setup({ P: 2 }, Infinity)), /: --clip-grad-norm must be finite, got Infinity$/);
  assert.throws(() => checkClipping({ ...setup({ P: 2 }), schedule: { ...setup({ P: 2 }).schedule, synchronous: false, name: "async" } }), /--clip-grad-norm needs a synchronous schedule .*not 'async'/);
  assert.throws(() => clipGradNorm([], Number.NaN), /maxNorm must be > 0, got NaN/);
});

const skip = mpiSkipReason();

test("clipping on processes (1f1b, P = 2; with 2 replicas; PTD-P (2,2,1) with sequence parallelism) == inline and threads bit for bit", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-clip-"));
  try {
    for (const [P, T, D] of [[2, 1, 1], [2, 1, 2], [2, 2, 1]]) {
      const sp = T > 1;
      const out = join(dir, `${P}${T}${D}.json`);
      const p = spawnSync("mpirun", [...mpirunArgs(P * T * D, "vader"), process.execPath, SCRIPT, "processes", String(P), String(T), String(D), sp ? "sp" : "no-sp", "1f1b", out, String(MAX_NORM)],
        { encoding: "utf8", env: { ...process.env, ...MPI_ENV }, timeout: 180_000 });
      assert.equal(p.status, 0, `(${P},${T},${D}): status ${p.status}: ${p.stderr}${p.stdout}`);
      const got = JSON.parse(readFileSync(out, "utf8")) as Result;
      const want = T === 1 ? await inline(setup({ P }), D) : await threads(setup({ P, T, sp }), D);
      assertSame(got, want, `processes (${P},${T},${D})`);
      assertClose(got, `processes (${P},${T},${D})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("createPipeline({ clipGradNorm }) trains as single-device clipGradNorm (within 1e-5); a bad bound is one line naming it", async () => {
  const spec: ModelSpec = { name: "mlp", input: 6, hidden: [8, 8], classes: 3 };
  const rng = new Rng(2);
  const data = Array.from({ length: 3 }, () => ({ x: Tensor.randn([8, 6], rng), y: Int32Array.from({ length: 8 }, () => rng.int(3)) }));
  const model = createModel(spec, 4);
  const opt = createOptimizer(OPT, model.namedParameters());
  for (const b of data) {
    opt.zeroGrad();
    backward(crossEntropyLoss(model.forward(b.x), b.y));
    assert.ok(clipGradNorm(model.parameters(), 0.05) > 0.1, "the clip is active");
    opt.step();
  }
  for (const executor of ["inline", "threads"] as const) {
    const pipe = await createPipeline({ model: { builtin: spec, seed: 4 }, stages: 2, microbatches: 2, optimizer: OPT, executor, clipGradNorm: 0.05 });
    try {
      for (const b of data) await pipe.step(b.x, b.y);
      const got = await pipe.stateDict();
      for (const [k, t] of model.stateDict()) {
        got.get(k)!.data.forEach((v, i) => assert.ok(Math.abs(v - t.data[i]) <= 1e-5 * Math.max(1, Math.abs(t.data[i])), `${executor}: ${k}[${i}]: ${v} vs ${t.data[i]}`));
      }
    } finally {
      await pipe.close();
    }
  }
  for (const bad of [0, -2, Number.NaN]) {
    await assert.rejects(createPipeline({ model: { builtin: spec }, stages: 2, microbatches: 2, optimizer: OPT, clipGradNorm: bad }),
      new RegExp(`createPipeline: clipGradNorm must be a finite number > 0, got ${String(bad).replace("NaN", "null")}`));
  }
  await assert.rejects(createPipeline({ model: { builtin: spec }, stages: 2, microbatches: 2, optimizer: OPT, schedule: "async", clipGradNorm: 1 }),
    /createPipeline: clipGradNorm needs a synchronous schedule/);
});

test("train --clip-grad-norm: a pipeline and one device give the same test loss, unlike training without it; a bad bound is one line", () => {
  const args = ["train", "--model", "mlp", "--data", "slice", "--limit", "64", "--epochs", "1", "--quiet", "--json", "--lr", "0.5"];
  const run = (...more: string[]): { test_loss: number } => {
    const r = spawnSync(process.execPath, [MAIN, ...args, ...more], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { test_loss: number };
  };
  const pipeline = ["--schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--executor", "threads"];
  const one = run("--clip-grad-norm", "0.05"), piped = run("--clip-grad-norm", "0.05", ...pipeline), free = run(...pipeline);
  assert.ok(Math.abs(one.test_loss - piped.test_loss) <= 1e-5 * Math.abs(one.test_loss), `${one.test_loss} vs ${piped.test_loss}`);
  assert.notEqual(free.test_loss, piped.test_loss);
  for (const [x, why] of [["0", "--clip-grad-norm must be > 0, got 0"], ["nan", "--clip-grad-norm 'nan' is not a number"]]) {
    const r = spawnSync(process.execPath, [MAIN, ...args, "--clip-grad-norm", x], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim(), why);
  }
  const r = spawnSync(process.execPath, [MAIN, ...args, "--clip-grad-norm", "1", "--schedule", "async", "--stages", "2", "--microbatches", "2"], { encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr.trim(), /^--clip-grad-norm needs a synchronous schedule; --schedule async steps each stage on its own$/);
});

test("withReplicas: a worker's REDUCEs of a step all precede its STEPs (a V worker holds two stages), and the lists stay valid", () => {
  for (const name of ["zb-v", "dualpipev", "1f1b"]) {
    const base = generateSchedule(name, { stages: 4, microbatches: 8 });
    const r = withReplicas(base, 2);
    assert.equal(validateSchedule(r).ok, true, name);
    r.workers.forEach((list, w) => {
      const kinds = list.filter((a) => a.kind === "REDUCE" || a.kind === "STEP").map((a) => formatAction(a));
      const stages = base.workers[w].filter((a) => a.kind === "STEP").map((a) => a.stage);
      assert.deepEqual(kinds, [...stages.map((s) => `${s}REDUCE0`), ...stages.map((s) => `${s}STEP0`)], `${name} worker ${w}`);
      assert.deepEqual(list.filter((a) => a.kind !== "REDUCE"), [...base.workers[w]], `${name} worker ${w}: the rest unchanged`);
    });
  }
});
