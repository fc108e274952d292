// A pipeline worker's share of the initial state: each unit's entries go to the one worker holding
// it (interleaved and colocated schedules included), their optimizer state with them; models whose
// keys name no unit fall back to the whole state; a worker's built-in model skips its random init.
import { test } from "node:test";
import assert from "node:assert/strict";
import { withoutInit } from "../src/nn/init.js";
import { Linear } from "../src/nn/linear.js";
import { Module } from "../src/nn/module.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { Rng } from "../src/tensor/random.js";
import type { PlainOptimizerState } from "../src/optim/index.js";
import { loadModelSource, UnitList } from "../src/pipeline/runtime/model-source.js";
import { loadWorkerState, shareState, unitOfKey, unitsPerWorker } from "../src/pipeline/runtime/worker-state.js";
import { colocate } from "../src/pipeline/schedule/colocate.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { toPlain } from "../src/optim/index.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { splitMiniBatch } from "../src/pipeline/runtime/split.js";

const spec: ModelSpec = { name: "mlp", input: 6, hidden: [5, 4, 3], classes: 2 };

test("unitsPerWorker: virtual stage c*S+s runs on stageToWorker[s]", () => {
  const inter = generateSchedule("interleaved", { stages: 2, microbatches: 4, chunks: 2 });
  assert.deepEqual(unitsPerWorker([1, 2, 1, 3], inter), [[0, 3], [1, 2, 4, 5, 6]]);
  const two = colocate(generateSchedule("1f1b", { stages: 3, microbatches: 3 }), [0, 0, 1]);
  assert.deepEqual(unitsPerWorker([2, 1, 2], two), [[0, 1, 2], [3, 4]]);
});

test("unitOfKey reads the unit index under the prefix, -1 otherwise", () => {
  assert.equal(unitOfKey("layers.12.attn.weight", "layers"), 12);
  assert.equal(unitOfKey("3.bias", ""), 3);
  assert.equal(unitOfKey("head.weight", "layers"), -1);
  assert.equal(unitOfKey("layers.3.weight", ""), -1);
});

test("shareState gives every entry to exactly one worker, with its optimizer tensors", () => {
  const model = createModel(spec, 1);
  const state = model.stateDict();
  const names = model.namedParameters().map(([k]) => k);
  const opt: PlainOptimizerState = {
    kind: "sgd", groups: [{ hyper: {}, baseLr: 0.1, params: names }], steps: Object.fromEntries(names.map((n) => [n, 3])),
    tensors: names.map((n) => [`${n}.momentum`, new Float32Array(1), [1]]),
  };
  const owners = unitsPerWorker([3, 5], generateSchedule("gpipe", { stages: 2, microbatches: 2 }));
  const shares = shareState(state, model.unitPrefix, owners, opt);
  assert.deepEqual(shares.map((s) => s.units), owners);
  const got = shares.flatMap((s) => s.entries.map(([k]) => k)).sort();
  assert.deepEqual(got, [...state.keys()].sort());
  for (const s of shares) {
    for (const [k] of s.entries) assert.ok(s.units!.includes(unitOfKey(k, "layers")), k);
    assert.deepEqual(s.optimizerState!.tensors.map(([k]) => k), s.entries.filter(([k]) => names.includes(k)).map(([k]) => `${k}.momentum`));
    assert.deepEqual(s.optimizerState!.groups, opt.groups);
  }
});

test("shareState sends the whole state when a key names no unit (another prefix, a model-level parameter)", () => {
  const state = new Map([["layers.0.weight", Tensor.zeros([2])], ["scale", Tensor.zeros([1])]]);
  const shares = shareState(state, "layers", [[0], [1]]);
  for (const s of shares) { assert.equal(s.units, null); assert.equal(s.entries.length, 2); }
});

test("loadWorkerState loads the held units only, exactly, and names a foreign key", () => {
  const main = createModel(spec, 7);
  const owners = [[0, 1, 2], [3, 4, 5, 6, 7]]; // 8 units: Flatten, then Linear/ReLU pairs, Linear
  const [, share] = shareState(main.stateDict(), main.unitPrefix, owners);
  const worker = createModel(spec, 8);
  loadWorkerState(worker, share);
  const mine = worker.stateDict(), theirs = main.stateDict();
  for (const [k, t] of theirs) {
    const held = owners[1].includes(unitOfKey(k, "layers"));
    assert.equal(mine.get(k)!.data.every((v, i) => v === t.data[i]), held || t.data.every((v) => v === 0), k);
  }
  const [first] = shareState(main.stateDict(), main.unitPrefix, owners);
  assert.throws(() => loadWorkerState(worker, { units: [3], entries: first.entries }), /'layers\.1\.weight' is not a key of the units this worker holds \(3\)/);
  const missing = { units: [1], entries: first.entries.filter(([k]) => k !== "layers.1.bias") };
  assert.throws(() => loadWorkerState(worker, missing), /missing keys: bias/);
});

test("loadWorkerState on a user's layer list (prefix '')", () => {
  const rng = new Rng(3);
  const a = new UnitList([new Linear(3, 4, rng), new Linear(4, 2, rng)]);
  const b = new UnitList([new Linear(3, 4, rng), new Linear(4, 2, rng)]);
  const [, share] = shareState(a.stateDict(), "", [[0], [1]]);
  loadWorkerState(b, share);
  assert.deepEqual(b.units[1].stateDict().get("weight")!.data, a.units[1].stateDict().get("weight")!.data);
  assert.notDeepEqual(b.units[0].stateDict().get("weight")!.data, a.units[0].stateDict().get("weight")!.data);
});

test("withoutInit: a built-in builds with zero parameters, and later builds are unchanged", async () => {
  const before = createModel(spec, 5).stateDict();
  const blank = withoutInit(() => createModel(spec, 5));
  for (const [k, t] of blank.stateDict()) if (k.endsWith("weight")) assert.ok(t.data.every((v) => v === 0), k);
  const skipped = await loadModelSource({ kind: "builtin", spec, seed: 5 }, { initialise: false });
  assert.ok(skipped.units.every((u: Module) => u.parameters().every((p) => p.data.every((v) => v === 0))));
  const after = createModel(spec, 5).stateDict();
  for (const [k, t] of before) assert.deepEqual(after.get(k)!.data, t.data, k);
  assert.throws(() => withoutInit(() => { throw new Error("build failed"); }), /build failed/);
  assert.ok(createModel(spec, 5).stateDict().get("layers.1.weight")!.data.some((v) => v !== 0), "the skip ends with a throwing build");
});

test("threads resumed from momentum state (interleaved, each worker given its share) equal inline bit for bit", async () => {
  const mlp: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16, 16], classes: 5 }; // 8 units
  const rng = new Rng(4);
  const batch = () => splitMiniBatch(Tensor.randn([8, 12], rng), Int32Array.from({ length: 8 }, () => rng.int(5)), 4);
  const [first, second] = [batch(), batch()];
  const base = { model: mlp, seed: 2, recompute: "never", optimizer: { name: "sgd", lr: 0.1, momentum: 0.9 } } as const;
  const warm = createModel(mlp, 2);
  const ex0 = new InlineExecutor(warm, { ...base, schedule: generateSchedule("1f1b", { stages: 2, microbatches: 4 }), balance: [4, 4] });
  await ex0.step(first);
  const optimizerState = toPlain(await ex0.optimizerState(warm.namedParameters().map(([n]) => n)));
  const setup: PipelineSetup = { ...base, schedule: generateSchedule("interleaved", { stages: 2, microbatches: 4, chunks: 2 }), balance: [2, 2, 2, 2], optimizerState };
  const inlineModel = createModel(mlp, 9);
  inlineModel.loadStateDict(warm.stateDict());
  const inline = new InlineExecutor(inlineModel, setup);
  const threads = await ThreadsExecutor.create(setup, warm.stateDict());
  try {
    const [a, b] = [await inline.step(second), await threads.step(second)];
    assert.equal(b.loss, a.loss);
    const want = await inline.stateDict(), got = await threads.stateDict();
    for (const [k, t] of want) assert.deepEqual(got.get(k)!.data, t.data, k);
  } finally {
    await threads.close();
  }
});
