// PipeTransformer through createPipeline's `freeze` option: freeze checks at pipe.endEpoch() freeze a
// growing prefix on schedule and move to AutoPipe's layout; the weights equal those of the elastic
// trainer driven directly (the CLI's runtime, tested against non-transitioning runs in
// pipetransformer-elastic.test.ts); save + resume keeps the freezes; a user's layer list trains as
// the built-in vit does; built-in models without transformer blocks are refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPipeline, Rng, Tensor, type ModelSpec } from "../src/index.js";
import { ElasticTrainer } from "../src/pipeline/elastic/trainer.js";
import { countCorrect, crossEntropyLoss } from "../src/nn/loss.js";
import { createModel } from "../src/nn/models/index.js";
import { noGrad } from "../src/autograd/engine.js";

const SPEC: ModelSpec = { name: "vit", image: 28, patch: 7, dim: 16, depth: 2, heads: 2, classes: 10 };
const N = 16;
const OPT = { name: "sgd", lr: 0.05, momentum: 0.9 } as const;
const FREEZE = { policy: { alpha: "1/2", criterion: "schedule" as const }, batch: N, samples: 64 };

function batches(count: number): { x: Tensor; y: Int32Array }[] {
  const rng = new Rng(11);
  return Array.from({ length: count }, () => ({ x: Tensor.randn([N, 1, 28, 28], rng, 1), y: Int32Array.from({ length: N }, () => rng.int(10)) }));
}

test("freeze option: endEpoch freezes on schedule, weights equal the elastic trainer's, save + resume keeps the freezes", async () => {
  const data = batches(4);
  const pipe = await createPipeline({ model: { builtin: SPEC, seed: 5 }, stages: 2, optimizer: OPT, freeze: FREEZE });
  const direct = await ElasticTrainer.create({ spec: SPEC, seed: 5, optimizer: OPT, workers: 2, stages: 2, batch: N,
    freeze: FREEZE.policy, elastic: true, cache: false, samples: 64 });
  const dir = mkdtempSync(join(tmpdir(), "pw-freeze-"));
  try {
    for (const [e, part] of [data.slice(0, 2), data.slice(2)].entries()) {
      for (const b of part) {
        const loss = await pipe.step(b.x, b.y);
        assert.ok(Number.isFinite(loss));
        await direct.step(b.x, b.y, null, 1);
      }
      const frozen = await pipe.endEpoch();
      await direct.endEpoch(e + 1);
      if (e === 0) assert.ok(frozen !== null && frozen > 0, `the schedule criterion freezes after epoch 1, got ${frozen}`);
    }
    assert.equal(pipe.frozenLayers, direct.frozenLayers);
    await direct.sync();
    const got = await pipe.stateDict();
    for (const [k, t] of direct.model.stateDict()) assert.deepEqual(got.get(k)!.data, t.data, k);
    await pipe.save(join(dir, "ck.safetensors"));
    const resumed = await createPipeline({ model: { builtin: SPEC, seed: 5 }, stages: 2, optimizer: OPT, freeze: FREEZE, resume: join(dir, "ck.safetensors") });
    try {
      assert.equal(resumed.frozenLayers, pipe.frozenLayers);
      assert.equal(resumed.steps, 4);
      assert.equal(resumed.epochs, 2);
      const out = await resumed.eval(data[0].x);
      assert.deepEqual(out.shape, [N, 10]);
    } finally { await resumed.close(); }
  } finally {
    await pipe.close();
    await direct.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a user's layer list (module model) freezes, re-partitions and caches as the built-in vit does, bit for bit", async () => {
  const data = batches(4);
  const idx = (k: number): number[] => Array.from({ length: N }, (_, i) => k * N + i);
  const freeze = { ...FREEZE, cache: true, workers: 2 };
  const builtin = await createPipeline({ model: { builtin: SPEC, seed: 5 }, stages: 2, optimizer: OPT, freeze });
  const user = await createPipeline({ model: { module: new URL("./lib-user-vit.js", import.meta.url), export: "build", args: { spec: { ...SPEC }, seed: 5 } },
    stages: 2, optimizer: OPT, freeze: { ...freeze, sampleShape: [1, 28, 28] } });
  try {
    for (const [e, part] of [data.slice(0, 2), data.slice(2), data.slice(2)].entries()) {
      for (const [j, b] of part.entries()) {
        const k = e === 0 ? j : 2 + j;
        assert.equal(await user.step(b.x, b.y, idx(k)), await builtin.step(b.x, b.y, idx(k)), `epoch ${e + 1}, step ${j}: loss`);
      }
      assert.equal(await user.endEpoch(), await builtin.endEpoch(), `epoch ${e + 1}: freeze`);
    }
    assert.ok(user.frozenLayers >= 3, `the schedule froze ${user.frozenLayers} layers (the cache needs 3)`);
    const want = await builtin.stateDict(), got = await user.stateDict();
    assert.equal(got.size, want.size);
    for (const [k, t] of want) assert.deepEqual(got.get(k.replace(/^layers\./, ""))?.data, t.data, k);
    assert.deepEqual((await user.eval(data[0].x)).data, (await builtin.eval(data[0].x)).data, "eval output");
  } finally {
    await user.close();
    await builtin.close();
  }
});

test("freeze option refuses built-in models other than the vit and gpt", async () => {
  await assert.rejects(createPipeline({ model: { builtin: { name: "mlp" }, seed: 1 }, stages: 2, optimizer: OPT, freeze: FREEZE }),
    /freeze \(PipeTransformer\) trains the built-in vit or gpt/);
});

test("a freezing pipe has the Pipe interface: run = steps in order, evaluate = the eval output's loss, loadStateDict keeps the freezes", async () => {
  const data = batches(3);
  const mk = () => createPipeline({ model: { builtin: SPEC, seed: 5 }, stages: 2, optimizer: OPT, freeze: FREEZE });
  const [a, b] = [await mk(), await mk()];
  try {
    // run(batches) against the oracle of the same steps one by one.
    const viaRun = await a.run(data);
    const viaStep: number[] = [];
    for (const d of data) viaStep.push(await b.step(d.x, d.y));
    assert.deepEqual(viaRun, viaStep);
    // eval and evaluate run through the stages: eval against the single-device forward of the
    // gathered weights, evaluate against the loss and accuracy computed here from eval()'s output
    // (its micro-batch losses are summed, so within library.test.ts's tolerance for the same identity).
    const ev = await a.evaluate(data[0].x, data[0].y);
    const out = await a.eval(data[0].x);
    const single = createModel(SPEC, 0);
    single.loadStateDict(await a.stateDict());
    single.eval();
    const want = noGrad(() => single.forward(data[0].x));
    assert.deepEqual(out.shape, want.shape);
    for (let i = 0; i < want.size; i++) assert.ok(Math.abs(out.data[i] - want.data[i]) <= 1e-5 * Math.max(1, Math.abs(want.data[i])), `eval output ${i}: ${out.data[i]} vs ${want.data[i]}`);
    const loss = crossEntropyLoss(out, data[0].y).item();
    assert.ok(Math.abs(ev.loss - loss) <= 1e-6 * Math.max(1, Math.abs(loss)), `evaluate ${ev.loss} vs ${loss}`);
    assert.equal(ev.correct, countCorrect(out, data[0].y));
    assert.equal(ev.count, N);
    await assert.rejects(a.step(data[0].x, Tensor.zeros([N, 10])), /y must be an Int32Array of class ids, got/);
    // loadStateDict: b takes a's weights; both then take the same step and stay equal.
    await b.endEpoch();
    const frozen = b.frozenLayers;
    await b.loadStateDict(await a.stateDict());
    assert.equal(b.frozenLayers, frozen);
    const got = await b.stateDict();
    for (const [k, t] of await a.stateDict()) assert.deepEqual(got.get(k)!.data, t.data, k);
    assert.ok(Number.isFinite(await b.step(data[1].x, data[1].y)));
  } finally {
    await a.close();
    await b.close();
  }
});
