// Executor.loadStateDict replaces the weights inside the running workers (no restart): the optimizer
// state is kept, and training goes on from the new weights. The oracle is single-device training
// with the same load between its steps (1e-5 relative); threads (with and without replicas) and
// inline must then agree, threads without replicas with inline bit for bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { backward } from "../src/autograd/engine.js";
import { splitBatch } from "../src/data/microbatch.js";
import { crossEntropyLoss } from "../src/nn/loss.js";
import { createModel } from "../src/nn/models/index.js";
import { SGD } from "../src/optim/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import type { Executor } from "../src/pipeline/runtime/executor.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { batches, N, OPT, SEED, SPEC } from "./lib-replicas-script.js";

const NEW_SEED = 99;

async function trainWithLoad(ex: Executor): Promise<{ state: Map<string, Tensor>; momentum: Map<string, Tensor> }> {
  const [b0, b1] = batches();
  const step = (b: { x: Tensor; y: Int32Array }): Promise<unknown> => {
    const parts = splitBatch(b, 4);
    return ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N });
  };
  await step(b0);
  const order = [...(await ex.stateDict()).keys()];
  const before = await ex.optimizerState(order);
  await ex.loadStateDict(createModel(SPEC, NEW_SEED).stateDict());
  // The weights are the new ones at once, and the optimizer state is untouched.
  const loaded = await ex.stateDict();
  for (const [k, t] of createModel(SPEC, NEW_SEED).stateDict()) assert.deepEqual(loaded.get(k)!.data, t.data, `${ex.name}: ${k} after the load`);
  const kept = await ex.optimizerState(order);
  for (const [k, t] of before.tensors) assert.deepEqual(kept.tensors.get(k)!.data, t.data, `${ex.name}: optimizer ${k} after the load`);
  await step(b1);
  const state = await ex.stateDict(), momentum = (await ex.optimizerState(order)).tensors;
  await ex.close();
  return { state, momentum };
}

test("loadStateDict into running workers: inline, threads and threads with 2 replicas continue as single-device training does", async () => {
  const model = createModel(SPEC, SEED);
  const setup: PipelineSetup = { model: SPEC, seed: SEED, schedule: generateSchedule("1f1b", { stages: 2, microbatches: 4 }),
    balance: uniformBalance(model.units.length, 2), recompute: "never", optimizer: OPT };
  const inline = await trainWithLoad(new InlineExecutor(model, setup));
  const threads = await trainWithLoad(await ThreadsExecutor.create(setup, createModel(SPEC, SEED).stateDict()));
  const replicas = await trainWithLoad(await ThreadsExecutor.create(setup, createModel(SPEC, SEED).stateDict(), 2));
  // Single device: step, load, step (SGD keeps its momentum over the load).
  const ref = createModel(SPEC, SEED);
  const opt = new SGD(ref.namedParameters(), { lr: OPT.lr, momentum: OPT.momentum, weightDecay: OPT.weightDecay });
  const [b0, b1] = batches();
  backward(crossEntropyLoss(ref.forward(b0.x), b0.y)); opt.step(); opt.zeroGrad();
  ref.loadStateDict(createModel(SPEC, NEW_SEED).stateDict());
  backward(crossEntropyLoss(ref.forward(b1.x), b1.y)); opt.step(); opt.zeroGrad();
  for (const [k, t] of ref.stateDict()) {
    for (const [name, got] of [["inline", inline], ["threads x2", replicas]] as const) {
      got.state.get(k)!.data.forEach((v, i) => assert.ok(Math.abs(v - t.data[i]) <= 1e-5 * Math.max(1, Math.abs(t.data[i])), `${name} ${k}[${i}]: ${v} vs ${t.data[i]}`));
    }
    assert.deepEqual(threads.state.get(k)!.data, inline.state.get(k)!.data, `threads == inline: ${k}`);
  }
  for (const [k, t] of inline.momentum) assert.deepEqual(threads.momentum.get(k)!.data, t.data, `threads == inline: optimizer ${k}`);
});

test("loadStateDict with a missing or misshapen key is refused before anything changes", async () => {
  const model = createModel(SPEC, SEED);
  const setup: PipelineSetup = { model: SPEC, seed: SEED, schedule: generateSchedule("gpipe", { stages: 2, microbatches: 2 }),
    balance: uniformBalance(model.units.length, 2), recompute: "never", optimizer: OPT };
  const ex = new InlineExecutor(model, setup);
  const good = createModel(SPEC, NEW_SEED).stateDict();
  const [first] = good.keys();
  const missing = new Map([...good].filter(([k]) => k !== first));
  await assert.rejects(ex.loadStateDict(missing), new RegExp(`the state has no '${first.replace(/\./g, "\\.")}'`));
  const bad = new Map(good);
  bad.set(first, Tensor.zeros([1]));
  await assert.rejects(ex.loadStateDict(bad), /has shape \[1\], the model \[/);
  for (const [k, t] of await ex.stateDict()) assert.deepEqual(t.data, createModel(SPEC, SEED).stateDict().get(k)!.data, `${k} unchanged`);
  await ex.close();
});
