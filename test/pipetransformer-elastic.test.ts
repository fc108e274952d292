// PipeTransformer's elastic training (src/pipeline/elastic): transitions move the training state
// exactly. Oracles are runs that never transition: GPipe accumulates every parameter's gradient over
// the same micro-batches in the same order whatever the partition, so a 2-stage run, a 1-stage run
// and a run that moves (or shrinks) between them at step k must reach the same bits; any lost or
// stale weight or optimizer state on a move breaks that. Replicas are compared with one replica on
// the whole batch within the data-parallel tolerance (src/api/data-parallel.ts: 1e-7 + 1e-5 |w|,
// the float32 order of the all-reduce's partial sums).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";
import { ElasticTrainer, type ElasticConfig } from "../src/pipeline/elastic/trainer.js";
import type { PhaseLayout } from "../src/pipeline/elastic/phase.js";
import type { PipelineModel } from "../src/pipeline/runtime/model-source.js";
import { ElasticPipeModel } from "../src/pipeline/elastic/pipe-model.js";
import { phaseSetup } from "../src/pipeline/elastic/phase.js";
import { applyFreeze } from "../src/pipeline/elastic/units.js";
import { loadModelSource } from "../src/pipeline/runtime/model-source.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import { mergeTensors, splitLabels, splitTensor } from "../src/data/microbatch.js";
import { partOf } from "../src/transport/reduce.js";

const SPEC: ModelSpec = { name: "vit", image: 28, patch: 7, dim: 16, depth: 2, heads: 2, classes: 10 };
// Units: 0 (embed), 1.attn, 1.mlp, 2.attn, 2.mlp, 3 (LayerNorm), 4 (TokenMean), 5 (head): 8 units, 6 layers.
const N = 16;

function config(o: Partial<ElasticConfig> = {}): ElasticConfig {
  return {
    spec: SPEC, seed: 5, optimizer: { name: "sgd", lr: 0.05, momentum: 0.9 }, workers: 2, stages: 2, batch: N,
    freeze: { alpha: "1/3", criterion: "schedule" }, elastic: true, cache: false, samples: 64, microbatchesPerStage: 2, ...o,
  };
}

function batches(count: number): { x: Tensor; y: Int32Array; idx: number[] }[] {
  const rng = new Rng(11);
  return Array.from({ length: count }, (_, k) => ({
    x: Tensor.randn([N, 1, 28, 28], rng, 1), y: Int32Array.from({ length: N }, () => rng.int(10)),
    idx: Array.from({ length: N }, (_, i) => k * N + i),
  }));
}

const layout = (ranges: [number, number][], o: Partial<PhaseLayout> = {}): PhaseLayout =>
  ({ frozenLayers: 0, stages: ranges.length, replicas: 1, microbatches: 4, prefix: 0, ranges, ...o });

/** Trains `data` with `first` until step k, then `second`; returns the weights and optimizer state. */
async function run(cfg: ElasticConfig, first: PhaseLayout, k: number, second: PhaseLayout, data = batches(4)) {
  const t = await ElasticTrainer.create(cfg);
  try {
    await t.moveTo(first);
    for (const [i, b] of data.entries()) {
      if (i === k) await t.moveTo(second);
      await t.step(b.x, b.y, b.idx, 1);
    }
    const opt = await t.optimizerState();
    return { state: t.model.stateDict(), opt };
  } finally { await t.close(); }
}

/** Names of the parameters of freeze layers 0..frozenLayers-1. */
function frozenParamNames(model: PipelineModel, frozenLayers: number): string[] {
  const head = model.unitPrefix ? `${model.unitPrefix}.` : "";
  return model.units.slice(0, frozenLayers).flatMap((m, i) => m.namedParameters(`${head}${i}`).map(([n]) => n));
}

function assertSameBits(a: Map<string, Tensor>, b: Map<string, Tensor>, what: string): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, t] of a) assert.deepEqual(t.data, b.get(k)!.data, `${what}: ${k} differs`);
}

test("a stage move at step k gives the bits of the run that used the new partition from the start", async () => {
  const A = layout([[0, 3], [3, 8]]), B = layout([[0, 5], [5, 8]]);
  const moved = await run(config(), A, 2, B);
  const onlyB = await run(config(), B, 0, B);
  const onlyA = await run(config(), A, 0, A);
  assertSameBits(moved.state, onlyB.state, "move vs new partition");
  assertSameBits(moved.state, onlyA.state, "move vs old partition");
  assertSameBits(moved.opt!.tensors, onlyB.opt!.tensors, "optimizer state");
});

test("a pipeline shrink (2 stages -> 1) at step k is bit-exact", async () => {
  const two = layout([[0, 4], [4, 8]]), one = layout([[0, 8]]);
  const shrunk = await run(config(), two, 1, one);
  const single = await run(config(), one, 0, one);
  assertSameBits(shrunk.state, single.state, "shrink vs 1-stage run");
  assertSameBits(shrunk.opt!.tensors, single.opt!.tensors, "optimizer state");
});

test("frozen layers keep their weights and optimizer state; active ones train; norms only for active layers", async () => {
  const t = await ElasticTrainer.create(config());
  try {
    const data = batches(4);
    for (const b of data.slice(0, 2)) await t.step(b.x, b.y, b.idx, 1);
    await t.freezeTo(1, 3);
    assert.equal(t.layout.frozenLayers, 3);
    const before = new Map([...t.model.stateDict()].map(([k, v]) => [k, v.clone()]));
    const optBefore = new Map([...(await t.optimizerState())!.tensors].map(([k, v]) => [k, v.clone()]));
    let norms: Map<number, number> | null = null;
    for (const b of data.slice(2)) norms = (await t.step(b.x, b.y, b.idx, 1)).gradSq;
    for (let l = 0; l < 3; l++) assert.equal(norms!.has(l), false, `frozen layer ${l} reported a gradient`);
    assert.ok((norms!.get(5) ?? 0) > 0, "the head (active) reports a gradient norm");
    const after = t.model.stateDict();
    const opt = (await t.optimizerState())!;
    const frozen = new Set(frozenParamNames(t.model, 3));
    assert.ok(frozen.size > 0);
    for (const [k, v] of after) {
      if (frozen.has(k)) assert.deepEqual(v.data, before.get(k)!.data, `frozen ${k} changed`);
      else if (k.startsWith("layers.5.")) assert.notDeepEqual(v.data, before.get(k)!.data, `active ${k} did not train`);
    }
    for (const [k, v] of opt.tensors) {
      const p = k.slice(0, k.lastIndexOf("."));
      if (frozen.has(p)) assert.deepEqual(v.data, optBefore.get(k)!.data, `optimizer state ${k} of a frozen parameter changed`);
    }
    // The frozen parameters' state is kept (for checkpoints), not dropped.
    assert.ok([...opt.tensors.keys()].some((k) => frozen.has(k.slice(0, k.lastIndexOf(".")))));
  } finally { await t.close(); }
});

test("cached prefix outputs equal recomputed ones, and training from the cache equals training without it", async () => {
  const data = batches(3);
  const trainWith = async (cache: boolean) => {
    const t = await ElasticTrainer.create(config({ cache }));
    try {
      await t.freezeTo(1, 3);
      const prefix = cache ? t.layout.prefix : 0;
      if (cache) assert.equal(prefix, 5, "embed + two blocks = 5 units cached");
      await t.moveTo(layout([[prefix, 8]], { frozenLayers: 3, prefix }));
      const hits: boolean[] = [];
      for (let epoch = 0; epoch < 2; epoch++) for (const b of data) hits.push((await t.step(b.x, b.y, b.idx, 1)).cached);
      if (cache) {
        assert.deepEqual(hits, [false, false, false, true, true, true]);
        for (const b of data) assertSameBits(new Map([["x", t.cache!.lookup(b.idx)!]]), new Map([["x", t.recomputePrefix(b.x)]]), "cached vs recomputed");
      }
      await t.sync();
      return t.model.stateDict();
    } finally { await t.close(); }
  };
  assertSameBits(await trainWith(true), await trainWith(false), "cache on vs off");
});

test("loadStateDict into the running layout: the workers train from the new weights, the freezes stay, the cache refills", async () => {
  const data = batches(2);
  const t = await ElasticTrainer.create(config({ cache: true }));
  try {
    await t.freezeTo(1, 3);
    for (const b of data) await t.step(b.x, b.y, b.idx, 1);
    assert.ok(t.cache!.lookup(data[0].idx), "filled before the load");
    const fresh = createModel(SPEC, 9).stateDict();
    await t.loadStateDict(fresh);
    assert.equal(t.layout.frozenLayers, 3);
    assert.equal(t.cache!.lookup(data[0].idx), null, "outputs of the old weights are dropped");
    await t.sync();
    assertSameBits(t.model.stateDict(), fresh, "the workers' weights after the load");
    assert.equal((await t.step(data[0].x, data[0].y, data[0].idx, 1)).cached, false);
    assertSameBits(new Map([["x", t.cache!.lookup(data[0].idx)!]]), new Map([["x", t.recomputePrefix(data[0].x)]]), "refilled from the new weights");
  } finally { await t.close(); }
});

test("the cache refuses to start past its memory bound with a clear message", async () => {
  const t = await ElasticTrainer.create(config({ cache: true, cacheBytes: 1000 }));
  try {
    await assert.rejects(t.freezeTo(1, 3), /AutoCache: .* needs .* MB, more than the bound .* --cache off/);
  } finally { await t.close(); }
});

test("2 replicas after a transition match one replica on the whole batch (data-parallel tolerance)", async () => {
  const two = layout([[0, 4], [4, 8]], { microbatches: 2 });
  const replicas = await run(config(), two, 1, layout([[0, 8]], { replicas: 2, microbatches: 2 }));
  const single = await run(config(), two, 1, layout([[0, 8]], { microbatches: 4 }));
  for (const [k, w] of single.state) {
    const r = replicas.state.get(k)!;
    for (let i = 0; i < w.size; i++) {
      const d = Math.abs(w.data[i] - r.data[i]);

      assert.ok(d <= 1e-7 + 1e-5 * Math.abs(w.data[i]), `${k}[${i}]: ${r.data[i]} vs ${w.data[i]}`);
    }
  }
});

test("an elastic run on the data slice freezes on schedule, writes a trace, and `sim --freeze-trace` replays it", async () => {
  const { trainElastic } = await import("../src/train/elastic.js");
  const { runSim } = await import("../src/cli/sim.js");
  const { writeFileSync, mkdtempSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const lines: string[] = [];
  const r = await trainElastic({
    spec: SPEC, seed: 1, epochs: 2, batch: 16, optimizer: { name: "sgd", lr: 0.05, momentum: 0.9 }, scheduleLr: "none", warmup: 0,
    workers: 2, freeze: { alpha: "1/2", criterion: "schedule" }, elastic: true, cache: true, data: "slice", limit: 128, log: (m) => lines.push(m),
  });
  // 6 layers, alpha 1/2: ceil(6 * 1/2) = 3 frozen after the first check.
  assert.deepEqual(r.trace.epochs.map((e) => e.frozen), [0, 3]);
  assert.ok(lines.some((l) => /transition after epoch 1: frozen 3\/6 layers, pipeline \d stages? x \d replicas?, \d+ micro-batch(es)?, partition \[/.test(l)), lines.join("\n"));
  const file = join(mkdtempSync(join(tmpdir(), "pw-trace-")), "trace.json");
  writeFileSync(file, JSON.stringify(r.trace));
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => { out.push(String(s)); return true; }) as typeof process.stdout.write;
  try { assert.equal(await runSim(["--freeze-trace", file, "--workers", "8", "--json"]), 0); } finally { process.stdout.write = write; }
  const p = JSON.parse(out.join("")) as { workers: number; speedup: number; epochs: { frozen: number }[] };
  assert.equal(p.workers, 8);
  assert.deepEqual(p.epochs.map((e) => e.frozen), [0, 3]);
  assert.ok(p.speedup > 0 && Number.isFinite(p.speedup));
});

test("`train` rejects freeze flags without --freeze, --freeze on models without transformer blocks, the cache on gpt, and bad alpha / criterion values", async () => {
  const { runTrain } = await import("../src/cli/train.js");
  await assert.rejects(runTrain(["--model", "vit", "--cache", "on"]), /--cache only apply with --freeze/);
  await assert.rejects(runTrain(["--model", "mlp", "--freeze"]), /--freeze trains the models made of transformer blocks \(vit, gpt: .*got --model mlp/);
  await assert.rejects(runTrain(["--model", "gpt", "--freeze", "--cache", "on"]), /--cache on does not apply to --model gpt .*use --cache off/);
  await assert.rejects(runTrain(["--model", "vit", "--freeze", "--freeze-alpha", "3/2"]), /--freeze-alpha '3\/2' is not valid/);
  await assert.rejects(runTrain(["--model", "vit", "--freeze", "--freeze-criterion", "loss"]), /loss/);
  await assert.rejects(runTrain(["--model", "vit", "--freeze", "--stages", "3", "--workers", "2"]), /--stages 3 exceeds --workers 2/);
});

test("a replica that throws ends the step with its replica, stage and error (not its peer's abort), and close() returns", async () => {
  const t = await ElasticTrainer.create(config({ freeze: null }));
  try {
    await t.moveTo(layout([[0, 8]], { replicas: 2, microbatches: 2 }));
    const [b] = batches(1);
    const y = b.y.slice();
    y[N - 1] = 99; // replica 1 holds the last rows of the last micro-batch: only it fails, replica 0 waits in the all-reduce
    await assert.rejects(t.step(b.x, y, b.idx, 1), (e: Error) => {
      assert.match(e.message, /stage 0, action 0F1 \(worker 0\): replica 1: .*99/);
      assert.doesNotMatch(e.message, /aborted/);
      return true;
    });
  } finally {
    await t.close();
  }
});

test("a cache fill runs the prefix on each replica's stage 0 worker: its rows' outputs come back, and the step trains on them", async () => {
  const source = { kind: "builtin" as const, spec: SPEC, seed: 5 };
  const model = await loadModelSource(source);
  applyFreeze(model, 3);
  const R = 2, M = 2, prefix = 5;
  const setup = phaseSetup(source, { name: "sgd", lr: 0.05, momentum: 0.9 }, layout([[prefix, 8]], { frozenLayers: 3, prefix, replicas: R, microbatches: M }), null);
  const [b] = batches(1);
  const split = { inputs: splitTensor(b.x, M), labels: splitLabels(b.y, M, 1), scale: 1 / N };
  // Oracle: the prefix run here, on the rows replica r takes of micro-batch j, in that order.
  const local = new ElasticPipeModel(model, prefix);
  const rows = split.inputs.flatMap((mb) => Array.from({ length: R }, (_, r) => {
    const [a, e] = partOf(mb.shape[0], r, R), row = mb.size / mb.shape[0];
    return local.prepareInput(new Tensor(mb.data.slice(a * row, e * row), [e - a, ...mb.shape.slice(1)]), true);
  }));
  const hooked = await ThreadsExecutor.create(setup, model.stateDict(), R);
  const fed = await ThreadsExecutor.create(setup, model.stateDict(), R);
  try {
    const r = await hooked.step({ ...split, prepare: true });
    assert.deepEqual(r.prepared?.map((p) => p.mb), [0, 0, 1, 1]);
    r.prepared!.forEach((p, i) => assert.deepEqual(p.data, rows[i].data, `micro-batch ${p.mb}, replica ${i % R}: prepared on the worker vs here`));
    // The same step fed the prefix's outputs directly (what a cache hit does) trains to the same bits.
    const merged = mergeTensors(rows);
    const direct = await fed.step({ ...split, inputs: splitTensor(merged, M) });
    assert.equal(r.loss, direct.loss);
    assertSameBits(await hooked.stateDict(), await fed.stateDict(), "hooked vs fed");
  } finally { await hooked.close(); await fed.close(); }
});

test("evaluation and prediction run the cached prefix on stage 0's workers: the bits of the whole model through the stages, nothing on this thread", async () => {
  const t = await ElasticTrainer.create(config({ freeze: null }));
  try {
    const [b] = batches(1);
    await t.moveTo(layout([[0, 3], [3, 8]], { microbatches: 2 }));
    const whole = await t.evaluate(b.x, b.y), wholeOut = await t.predict(b.x);
    await t.moveTo(layout([[5, 6], [6, 8]], { frozenLayers: 3, prefix: 5, microbatches: 2 }));
    // The main thread's copy of the prefix must not run: its first unit throws from here on.
    const first = t.model.units[0];
    const forward = first.forward.bind(first);
    first.forward = () => { throw new Error("the prefix ran on the calling thread"); };
    try {
      assert.deepEqual(await t.evaluate(b.x, b.y), whole);
      assert.deepEqual((await t.predict(b.x)).data, wholeOut.data);
    } finally { first.forward = forward; }
  } finally { await t.close(); }
});
