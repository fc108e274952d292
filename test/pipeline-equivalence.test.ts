// The central pipeline test (every executor runs the same schedule IR, so all must agree): for every synchronous
// schedule, with and without recomputation, the weights after 3 optimizer steps equal single-device
// training on the same mini-batches (1e-5 relative), and the threads executor reproduces the inline
// executor bit for bit. The oracle is plain single-device training written out here with the
// autograd engine and the optimizer, independent of the pipeline code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backward, noGrad } from "../src/autograd/engine.js";
import { mul } from "../src/autograd/index.js";
import { mergeTensors, splitBatch } from "../src/data/microbatch.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel, resolveSpec, type ModelSpec } from "../src/nn/models/index.js";
import { BatchNorm2d } from "../src/nn/norm.js";
import { Dropout } from "../src/nn/dropout.js";
import { Flatten, ReLU } from "../src/nn/activation.js";
import { Linear } from "../src/nn/linear.js";
import { Model } from "../src/nn/models/model.js";
import { SGD, toPlain } from "../src/optim/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import type { OptimizerConfig, PipelineSetup, RecomputeMode } from "../src/pipeline/runtime/setup.js";
import type { Executor } from "../src/pipeline/runtime/executor.js";
import { generateSchedule, validateSchedule, type WeightGradMode } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

const N = 8;
const STEPS = 3;
const SEED = 11;
const OPT: OptimizerConfig = { name: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-3 };
const newSgd = (m: Model): SGD => new SGD(m.namedParameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 });

/** 8 units: Flatten, (Linear, ReLU) x 3, Linear. */
const MLP: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16, 16], classes: 5 };
/** 12 units: (conv, norm, relu, pool) x 2, flatten, linear, relu, linear. */
const CNN_GN: ModelSpec = { name: "cnn", image: 8, inChannels: 1, channels: [4, 4], hidden: 8, classes: 3, norm: "group", groups: 2 };
const CNN_BN: ModelSpec = { ...CNN_GN, norm: "batch" } as ModelSpec;

type Batch = { x: Tensor; y: Int32Array };

function batches(spec: ModelSpec): Batch[] {
  const rng = new Rng(5);
  const shape = spec.name === "mlp" ? [N, 12] : [N, 1, 8, 8];
  const classes = spec.name === "mlp" ? 5 : 3;
  return Array.from({ length: STEPS }, () => ({ x: Tensor.randn(shape, rng), y: Int32Array.from({ length: N }, () => rng.int(classes)) }));
}

/** Single-device training on whole mini-batches (mean loss). */
function singleDevice(spec: ModelSpec, data: Batch[]): Map<string, Tensor> {
  const model = createModel(spec, SEED);
  const opt = newSgd(model);
  for (const b of data) {
    backward(crossEntropyLoss(model.forward(b.x), b.y));
    opt.step();
    opt.zeroGrad();
  }
  return model.stateDict();
}

/**
 * Single-device gradient accumulation over the same micro-batches (what BatchNorm with per-micro-batch
 * statistics computes), with running statistics updated once per mini-batch from the whole
 * mini-batch's inputs of each BatchNorm layer, by a fresh BatchNorm2d (torch's rule).
 */
function singleDeviceMicrobatched(spec: ModelSpec, data: Batch[], M: number): Map<string, Tensor> {
  const model = createModel(spec, SEED);
  const opt = newSgd(model);
  const bns = model.units.filter((u): u is BatchNorm2d => u instanceof BatchNorm2d);
  for (const bn of bns) bn.updateRunningStats = false;
  for (const b of data) {
    const seen = new Map<BatchNorm2d, Tensor[]>(bns.map((bn) => [bn, []]));
    for (const part of splitBatch(b, M)) {
      let h = part.x;
      for (const u of model.units) {
        if (u instanceof BatchNorm2d) seen.get(u)!.push(h.detach());
        h = u.forward(h);
      }
      backward(mul(crossEntropyLoss(h, part.y, "sum"), 1 / N));
    }
    opt.step();
    opt.zeroGrad();
    for (const bn of bns) {
      const probe = new BatchNorm2d(bn.channels, bn.eps, bn.momentum);
      probe.runningMean.data.set(bn.runningMean.data);
      probe.runningVar.data.set(bn.runningVar.data);
      noGrad(() => probe.forward(mergeTensors(seen.get(bn)!)));
      bn.runningMean.data.set(probe.runningMean.data);
      bn.runningVar.data.set(probe.runningVar.data);
      bn.numBatchesTracked.data[0] += 1;
    }
  }
  return model.stateDict();
}

interface Case { schedule: string; S: number; M: number; v: number }

async function runPipeline(spec: ModelSpec, c: Case, recompute: RecomputeMode, executor: "inline" | "threads",
  data: Batch[], weightGrads: WeightGradMode = "microbatch"):
  Promise<{ state: Map<string, Tensor>; losses: number[]; peaks: number[]; expectedPeaks: number[] }> {
  const schedule = generateSchedule(c.schedule, { stages: c.S, microbatches: c.M, chunks: c.v, weightGrads });
  if (weightGrads === "step") assert.ok(schedule.splitBackward && schedule.workers.some((l) => l.some((a) => a.kind === "W")), "step mode has W actions");
  const model = createModel(spec, SEED);
  const setup: PipelineSetup = { model: spec, seed: SEED, schedule, balance: uniformBalance(model.units.length, c.S * c.v), recompute, optimizer: OPT };
  const ex: Executor = executor === "inline"
    ? new InlineExecutor(model, setup)
    : await ThreadsExecutor.create(setup, model.stateDict());
  try {
    const losses: number[] = [];
    let peaks: number[] = [];
    for (const b of data) {
      const parts = splitBatch(b, c.M);
      const r = await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / b.y.length });
      losses.push(r.loss);
      peaks = r.peakActivations;
    }
    const state = await ex.stateDict();
    // The model's own order (PyTorch's), also where a worker holds interleaved chunks out of order.
    assert.deepEqual([...state.keys()], [...model.stateDict().keys()], `${executor} ${c.schedule}: state-dict order`);
    return { state, losses, peaks, expectedPeaks: validateSchedule(schedule).peakActivations };
  } finally {
    await ex.close();
  }
}

function assertClose(actual: Map<string, Tensor>, expected: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: state dict keys`);
  for (const [k, e] of expected) {
    const a = actual.get(k)!;
    let diff = 0, scale = 0;
    for (let i = 0; i < e.size; i++) { diff = Math.max(diff, Math.abs(a.data[i] - e.data[i])); scale = Math.max(scale, Math.abs(e.data[i])); }
    assert.ok(diff <= 1e-5 * Math.max(scale, 1e-12), `${what}: ${k} differs by ${diff.toExponential(3)} (max |w| ${scale.toExponential(3)})`);
  }
}

function assertIdentical(a: Map<string, Tensor>, b: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.size; i++) {
      if (!Object.is(x.data[i], y.data[i])) assert.fail(`${what}: ${k}[${i}] is ${x.data[i]} vs ${y.data[i]}`);
    }
  }
}

const CASES: Case[] = [
  { schedule: "gpipe", S: 2, M: 4, v: 1 },
  { schedule: "gpipe", S: 3, M: 2, v: 1 },
  { schedule: "gpipe", S: 4, M: 1, v: 1 },
  { schedule: "1f1b", S: 2, M: 3, v: 1 },
  { schedule: "1f1b", S: 4, M: 4, v: 1 },
  { schedule: "interleaved", S: 2, M: 2, v: 2 },
  { schedule: "interleaved", S: 4, M: 4, v: 2 },
  { schedule: "zb-h1", S: 2, M: 4, v: 1 },
  { schedule: "zb-h1", S: 3, M: 3, v: 1 },
  { schedule: "zb-h1", S: 4, M: 2, v: 1 },
  // V placement: S stages on S/2 workers (the first and last stage share worker 0).
  { schedule: "zb-v", S: 4, M: 4, v: 1 },
  { schedule: "zb-v", S: 6, M: 2, v: 1 },
  { schedule: "dualpipev", S: 4, M: 4, v: 1 },
  { schedule: "dualpipev", S: 6, M: 8, v: 1 },
];

const label = (c: Case, r: string): string => `${c.schedule} S=${c.S} M=${c.M}${c.v > 1 ? ` v=${c.v}` : ""} recompute=${r}`;

test("MLP: every schedule equals single-device training; threads equals inline bit for bit", async () => {
  const data = batches(MLP);
  const expected = singleDevice(MLP, data);
  for (const c of CASES) {
    for (const r of ["never", "always"] as const) {
      const inline = await runPipeline(MLP, c, r, "inline", data);
      assertClose(inline.state, expected, `inline ${label(c, r)}`);
      const threads = await runPipeline(MLP, c, r, "threads", data);
      assertIdentical(inline.state, threads.state, `threads ${label(c, r)}`);
      assert.deepEqual(threads.losses, inline.losses, `losses ${label(c, r)}`);
      // Activations are freed when the IR says (at B, or W when split): peaks match the validator's.
      assert.deepEqual(inline.peaks, inline.expectedPeaks, `inline peak activations ${label(c, r)}`);
      assert.deepEqual(threads.peaks, inline.expectedPeaks, `threads peak activations ${label(c, r)}`);
    }
  }
});

test("the pipeline's mini-batch loss is the single-device mean loss", async () => {
  const data = batches(MLP);
  const model = createModel(MLP, SEED);
  const first = crossEntropyLoss(model.forward(data[0].x), data[0].y).item();
  const { losses } = await runPipeline(MLP, { schedule: "1f1b", S: 2, M: 4, v: 1 }, "never", "inline", data);
  assert.ok(Math.abs(losses[0] - first) <= 1e-6 * Math.abs(first), `${losses[0]} vs ${first}`);
});

test("CNN with GroupNorm equals single-device training (recompute except-last too)", async () => {
  const data = batches(CNN_GN);
  const expected = singleDevice(CNN_GN, data);
  for (const c of [CASES[0], CASES[4], CASES[5], CASES[8]]) {
    for (const r of ["never", "except-last"] as const) {
      const inline = await runPipeline(CNN_GN, c, r, "inline", data);
      assertClose(inline.state, expected, `inline ${label(c, r)}`);
    }
  }
  const inline = await runPipeline(CNN_GN, CASES[8], "always", "inline", data);
  const threads = await runPipeline(CNN_GN, CASES[8], "always", "threads", data);
  assertIdentical(inline.state, threads.state, `threads ${label(CASES[8], "always")}`);
});

test("CNN with BatchNorm: per-micro-batch statistics, running averages once per mini-batch, none in recomputation", async () => {
  const data = batches(CNN_BN);
  // One micro-batch is exactly single-device training, running statistics included.
  const whole = await runPipeline(CNN_BN, { schedule: "gpipe", S: 3, M: 1, v: 1 }, "always", "inline", data);
  assertClose(whole.state, singleDevice(CNN_BN, data), "gpipe M=1");
  for (const c of [CASES[0], CASES[3], CASES[6], CASES[7]]) {
    const expected = singleDeviceMicrobatched(CNN_BN, data, c.M);
    for (const r of ["never", "always"] as const) {
      const inline = await runPipeline(CNN_BN, c, r, "inline", data);
      assertClose(inline.state, expected, `inline ${label(c, r)}`);
      if (r === "always") {
        const threads = await runPipeline(CNN_BN, c, r, "threads", data);
        assertIdentical(inline.state, threads.state, `threads ${label(c, r)}`);
      }
    }
  }
});

test("an asynchronous list (STEP between F and B, several steps) runs through the same interpreter: threads equals inline", async () => {
  const data = batches(MLP);
  const M = 2, S = 3;
  const schedule = generateSchedule("async", { stages: S, microbatches: M, steps: STEPS });
  const split = data.map((b) => { const p = splitBatch(b, M); return { inputs: p.map((q) => q.x), labels: p.map((q) => q.y), scale: 1 / N }; });
  const results: Map<string, Tensor>[] = [];
  const losses: number[][] = [];
  for (const kind of ["inline", "threads"] as const) {
    const model = createModel(MLP, SEED);
    const setup: PipelineSetup = { model: MLP, seed: SEED, schedule, balance: uniformBalance(model.units.length, S), recompute: "never", optimizer: OPT };
    const ex: Executor = kind === "inline" ? new InlineExecutor(model, setup) : await ThreadsExecutor.create(setup, model.stateDict());
    try {
      const r = await ex.run(split, [1, 0.5, 0.25]);
      losses.push(r.perMicrobatch.map((m) => m.loss));
      results.push(await ex.stateDict());
    } finally {
      await ex.close();
    }
  }
  assertIdentical(results[0], results[1], "async threads vs inline");
  assert.deepEqual(losses[1], losses[0]);
  // Stale weights: asynchronous training is not single-device training (the test can tell them apart).
  const sync = singleDevice(MLP, data);
  const w = "layers.1.weight";
  assert.ok(results[0].get(w)!.data.some((x, i) => Math.abs(x - sync.get(w)!.data[i]) > 1e-6), "async should differ from synchronous training");
});

test("the stages' optimizer states merge into the single-device optimizer's state (checkpoints resume either way)", async () => {
  const data = batches(MLP);
  const ref = createModel(MLP, SEED);
  const opt = newSgd(ref);
  for (const b of data) { backward(crossEntropyLoss(ref.forward(b.x), b.y)); opt.step(); opt.zeroGrad(); }
  const expected = opt.stateDict();
  const c: Case = { schedule: "1f1b", S: 3, M: 2, v: 1 };
  const schedule = generateSchedule(c.schedule, { stages: c.S, microbatches: c.M });
  const model = createModel(MLP, SEED);
  const ex = new InlineExecutor(model, { model: MLP, seed: SEED, schedule, balance: uniformBalance(model.units.length, c.S), recompute: "never", optimizer: OPT });
  for (const b of data) {
    const parts = splitBatch(b, c.M);
    await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N });
  }
  const merged = await ex.optimizerState(model.namedParameters().map(([n]) => n));
  assert.deepEqual(merged.groups.map((g) => g.params), expected.groups.map((g) => g.params));
  assert.deepEqual(merged.steps, expected.steps);
  assertClose(merged.tensors, expected.tensors, "momentum buffers");
  // Resume: a fresh pipeline (another partition) from the weights and the merged state continues
  // exactly as single-device training does.
  const extra = batches(MLP)[0];
  backward(crossEntropyLoss(ref.forward(extra.x), extra.y)); opt.step(); opt.zeroGrad();
  const model2 = createModel(MLP, SEED + 1);
  model2.loadStateDict(await ex.stateDict());
  const schedule2 = generateSchedule("gpipe", { stages: 2, microbatches: 4 });
  const ex2 = new InlineExecutor(model2, { model: MLP, seed: SEED, schedule: schedule2, balance: [3, 5], recompute: "never", optimizer: OPT, optimizerState: toPlain(merged) });
  const parts = splitBatch(extra, 4);
  await ex2.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N });
  assertClose(await ex2.stateDict(), ref.stateDict(), "resumed pipeline");
});

test("recomputation replays dropout masks: recompute=always trains exactly like keeping activations", async () => {
  const data = batches(MLP);
  const build = (p1: number, p2: number): Model => {
    const rng = new Rng(9);
    const units = [new Flatten(), new Linear(12, 16, rng), new ReLU(), new Dropout(p1, 1), new Linear(16, 16, rng), new ReLU(),
      new Dropout(p2, 2), new Linear(16, 5, rng)];
    return new Model(resolveSpec(MLP), units);
  };
  const schedule = generateSchedule("1f1b", { stages: 2, microbatches: 4 });
  const train = async (model: Model, recompute: RecomputeMode): Promise<Map<string, Tensor>> => {
    const ex = new InlineExecutor(model, { model: MLP, seed: 0, schedule, balance: [4, 4], recompute, optimizer: OPT });
    for (const b of data) {
      const parts = splitBatch(b, 4);
      await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N });
    }
    return ex.stateDict();
  };
  const kept = await train(build(0.5, 0.3), "never");
  const recomputed = await train(build(0.5, 0.3), "always");
  assertIdentical(kept, recomputed, "recompute vs keep with dropout");
  // The masks matter (dropout is really on): without dropout training ends elsewhere.
  const noDropout = await train(build(0, 0), "never");
  const w = "layers.1.weight";
  assert.ok(noDropout.get(w)!.data.some((x, i) => x !== kept.get(w)!.data[i]), "dropout had no effect");
});

test("the pipeline never changes the model's BatchNorm layers: outside a stage they keep their own statistics", async () => {
  const model = createModel(CNN_BN, SEED);
  const bns = model.units.filter((u): u is BatchNorm2d => u instanceof BatchNorm2d);
  const schedule = generateSchedule("gpipe", { stages: 2, microbatches: 2 });
  const ex = new InlineExecutor(model, { model: CNN_BN, seed: SEED, schedule, balance: uniformBalance(model.units.length, 2), recompute: "never", optimizer: OPT });
  const [b] = batches(CNN_BN);
  const parts = splitBatch({ x: b.x, y: b.y }, 2);
  await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N });
  assert.ok(bns.every((bn) => bn.updateRunningStats && !Object.hasOwn(bn, "forward")), "a layer was patched");
  // A training forward outside the pipeline (the executor still open) updates the layer's own statistics.
  const before = bns.map((bn) => [...bn.runningMean.data]);
  const tracked = bns.map((bn) => bn.numBatchesTracked.data[0]);
  model.train();
  model.forward(b.x);
  bns.forEach((bn, i) => {
    assert.notDeepEqual([...bn.runningMean.data], before[i], "running mean unchanged by a plain training forward");
    assert.equal(bn.numBatchesTracked.data[0], tracked[i] + 1);
  });
  await ex.close();
});

// Weight gradients once per step (weightGrads: "step"): every B is input-gradient-only and each
// stage computes its weight gradients in one stacked pass right before its STEP. Micro-batches of
// 4-8 rows and Linear layers 48 wide (>= 4x the rows) exercise the held transposed weights (rows <=
// THIN_ROWS) and the native swapped thin product (n >= 4m). Same oracle as above: single-device
// training on the whole mini-batch, 1e-5 relative; threads reproduce inline bit for bit.
const WIDE: ModelSpec = { name: "mlp", input: 48, hidden: [48, 48, 48], classes: 5 };
const WIDE_N = 16;

function wideBatches(): Batch[] {
  const rng = new Rng(23);
  return Array.from({ length: STEPS }, () => ({ x: Tensor.randn([WIDE_N, 48], rng), y: Int32Array.from({ length: WIDE_N }, () => rng.int(5)) }));
}

test("weightGrads 'step' (gpipe, 1f1b, interleaved, zb-h1): equals single-device training; threads equals inline bit for bit", async () => {
  const data = wideBatches();
  const expected = singleDevice(WIDE, data);
  const cases: [Case, RecomputeMode][] = [
    [{ schedule: "gpipe", S: 2, M: 4, v: 1 }, "never"],
    [{ schedule: "1f1b", S: 3, M: 4, v: 1 }, "never"],
    [{ schedule: "1f1b", S: 4, M: 2, v: 1 }, "always"],
    [{ schedule: "interleaved", S: 2, M: 4, v: 2 }, "never"],
    [{ schedule: "zb-h1", S: 2, M: 4, v: 1 }, "never"],
    [{ schedule: "zb-h1", S: 3, M: 2, v: 1 }, "always"],
  ];
  for (const [c, r] of cases) {
    const what = `step-mode ${label(c, r)}`;
    const inline = await runPipeline(WIDE, c, r, "inline", data, "step");
    assertClose(inline.state, expected, `inline ${what}`);
    const threads = await runPipeline(WIDE, c, r, "threads", data, "step");
    assertIdentical(inline.state, threads.state, `threads ${what}`);
    assert.deepEqual(threads.losses, inline.losses, `losses ${what}`);
    assert.deepEqual(inline.peaks, inline.expectedPeaks, `inline peak activations ${what}`);
    assert.deepEqual(threads.peaks, inline.expectedPeaks, `threads peak activations ${what}`);
  }
  // The oracle can tell: training on only the first two micro-batches' gradients ends elsewhere.
  const wrong = singleDevice(WIDE, data.map((b) => ({ x: new Tensor(b.x.data.slice(0, WIDE_N * 24), [WIDE_N / 2, 48]), y: b.y.slice(0, WIDE_N / 2) })));
  assert.throws(() => assertClose(wrong, expected, "half batches"), /differs/);
});

// Layout copies only ever speed things up: a worker that made every held weight's W^T copy before
// its first use (warm), one that never made a copy ahead of use (cold) and the default timing-driven
// one end with the same bits, on both executors. (On AVX2 the plain and the transposed-copy products
// round differently, so a kernel chosen by whether a copy exists would show here, run under
// scripts/test-other-isa.)
test("layout cache forced cold and forced warm: the same bits on inline and threads", async () => {
  const data = wideBatches();
  const before = process.env.PIPEWRIGHT_LAYOUT_CACHE;
  const runs = new Map<string, Map<string, Tensor>>();
  try {
    for (const mode of ["cold", "warm", "auto"]) {
      process.env.PIPEWRIGHT_LAYOUT_CACHE = mode;
      for (const [c, wg] of [[{ schedule: "1f1b", S: 2, M: 4, v: 1 }, "microbatch"], [{ schedule: "gpipe", S: 2, M: 4, v: 1 }, "step"]] as const) {
        for (const executor of ["inline", "threads"] as const) {
          runs.set(`${mode} ${executor} ${c.schedule} ${wg}`, (await runPipeline(WIDE, c, "never", executor, data, wg)).state);
        }
      }
    }
  } finally {
    if (before === undefined) delete process.env.PIPEWRIGHT_LAYOUT_CACHE; else process.env.PIPEWRIGHT_LAYOUT_CACHE = before;
  }
  for (const wg of ["1f1b microbatch", "gpipe step"]) {
    const ref = runs.get(`cold inline ${wg}`)!;
    for (const [k, s] of runs) if (k.endsWith(wg)) assertIdentical(s, ref, `${k} vs cold inline`);
  }
});
