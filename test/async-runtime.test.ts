// Asynchronous pipelines on the runtime: every weight policy runs through the executors'
// hooks; the threads executor (which rebuilds the policies from the setup's JSON) equals the inline
// one bit for bit, with one worker per stage and with stages sharing workers; the policies and the
// Spike-Compensation delay receive the delays measured from the IR.
import { test } from "node:test";
import assert from "node:assert/strict";
import { splitBatch } from "../src/data/microbatch.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import type { OptimizerConfig, PipelineSetup } from "../src/pipeline/runtime/setup.js";
import type { SplitBatch } from "../src/pipeline/runtime/executor.js";
import { asyncSetupFor } from "../src/pipeline/runtime/async-weights.js";
import { generateSchedule, measureDelays, contiguousWorkers } from "../src/pipeline/schedule/index.js";
import { parseAsyncConfig, SpikeCompensatedSGD, PredictPolicy, type AsyncFlagValues } from "../src/pipeline/weights/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

const SEED = 3;
/** 8 units: Flatten, (Linear, ReLU) x 3, Linear: four stages of two units. */
const MLP: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16, 16], classes: 5 };
const OPT: OptimizerConfig = { name: "sgd", lr: 0.05, momentum: 0.9, weightDecay: 1e-4 };

function data(steps: number, M: number, perMicro: number): SplitBatch[] {
  const rng = new Rng(9);
  return Array.from({ length: steps }, () => {
    const n = M * perMicro;
    const parts = splitBatch({ x: Tensor.randn([n, 12], rng), y: Int32Array.from({ length: n }, () => rng.int(5)) }, M);
    return { inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / n };
  });
}

interface Case { name: string; flags: AsyncFlagValues; S: number; M: number; perMicro: number; workers?: number; balance: number[]; spec?: ModelSpec }

/** 24 units (Flatten, (Linear, ReLU) x 11, Linear): a fine-grained pipeline of dozens of stages. */
const DEEP: ModelSpec = { name: "mlp", input: 12, hidden: new Array<number>(11).fill(8), classes: 5 };

const CASES: Case[] = [
  { name: "naive", flags: { method: "naive" }, S: 4, M: 1, perMicro: 3, balance: [2, 2, 2, 2] },
  { name: "stash", flags: { method: "stash" }, S: 4, M: 2, perMicro: 2, balance: [2, 2, 2, 2] },
  { name: "2bw", flags: { method: "2bw" }, S: 2, M: 3, perMicro: 2, balance: [4, 4] },
  { name: "pipemare T1+T2", flags: { method: "pipemare", "pipemare-anneal-steps": 6 }, S: 4, M: 1, perMicro: 3, balance: [2, 2, 2, 2] },
  { name: "pb SC+LWP, batch size 1", flags: { method: "pb" }, S: 8, M: 1, perMicro: 1, balance: [1, 1, 1, 1, 1, 1, 1, 1] },
  { name: "stash, 8 stages on 3 shared workers", flags: { method: "stash" }, S: 8, M: 1, perMicro: 1, workers: 3, balance: [1, 1, 1, 1, 1, 1, 1, 1] },
  { name: "pb, 24 stages (one unit each) on 3 shared workers", flags: { method: "pb" }, S: 24, M: 1, perMicro: 1, workers: 3, balance: new Array<number>(24).fill(1), spec: DEEP },
  { name: "pb, 8 stages on 2 shared workers", flags: { method: "pb", "weight-prediction-mode": "difference" }, S: 8, M: 1, perMicro: 1, workers: 2, balance: [1, 1, 1, 1, 1, 1, 1, 1] },
];

function setupOf(c: Case, steps: number): PipelineSetup {
  const schedule = generateSchedule("async", { stages: c.S, microbatches: c.M, steps,
    stageToWorker: c.workers ? contiguousWorkers(c.S, c.workers) : undefined });
  return { model: c.spec ?? MLP, seed: SEED, schedule, balance: c.balance, recompute: "never", optimizer: OPT,
    async: asyncSetupFor(schedule, parseAsyncConfig(c.flags), 6) };
}

for (const c of CASES) {
  test(`async ${c.name}: threads equals inline bit for bit over two runs of the lists`, async () => {
    const steps = c.S > 8 ? 60 : 12;
    const setup = setupOf(c, steps);
    const batches = data(steps, c.M, c.perMicro);
    const model = createModel(c.spec ?? MLP, SEED);
    const initial = new Map([...model.stateDict()].map(([k, t]) => [k, t.clone()]));
    const inline = new InlineExecutor(model, setup);
    const threads = await ThreadsExecutor.create(setup, initial);
    try {
      for (let r = 0; r < 2; r++) {
        const lr = batches.map((_, k) => 1 - 0.5 * k / steps);
        const a = await inline.run(batches, lr);
        const b = await threads.run(batches, lr);
        assert.deepEqual(b.perMicrobatch.map((m) => m.loss), a.perMicrobatch.map((m) => m.loss));
      }
      const wa = await inline.stateDict(), wb = await threads.stateDict();
      let moved = false;
      for (const [k, t] of wa) {
        assert.deepEqual(wb.get(k)!.data, t.data, `${k} differs between inline and threads`);
        if (t.data.some((v, i) => v !== initial.get(k)!.data[i])) moved = true;
      }
      assert.ok(moved, "training changed no weight");
      const oa = await inline.optimizerState(model.namedParameters().map(([n]) => n));
      const ob = await threads.optimizerState(model.namedParameters().map(([n]) => n));
      for (const [k, t] of oa.tensors) assert.deepEqual(ob.tensors.get(k)!.data, t.data, `optimizer ${k}`);
    } finally {
      await threads.close();
      await inline.close();
    }
  });
}

test("the runtime hands each stage the delay measured from the IR (policies and Spike Compensation)", async () => {
  for (const [S, M] of [[8, 1], [4, 2]] as const) {
    const c: Case = { name: "pb", flags: { method: "pb" }, S, M, perMicro: 1, balance: S === 8 ? [1, 1, 1, 1, 1, 1, 1, 1] : [2, 2, 2, 2] };
    const setup = setupOf(c, 16);
    const measured = measureDelays(setup.schedule).perStage;
    assert.ok(new Set(measured).size > 1, "the delays differ per stage, so a wrong one would show");
    const model = createModel(MLP, SEED);
    const ex = new InlineExecutor(model, setup);
    try {
      const rt = ex.asyncRuntime!;
      for (const [s, policy] of rt.policies) {
        assert.ok(policy instanceof PredictPolicy);
        assert.equal(policy.horizon, measured[s], `LWP horizon of stage ${s}`);
      }
      assert.ok(rt.policies.size > 0);
      // The optimizers of the stages: SpikeCompensatedSGD with D = tau_s.
      const stages = (ex as unknown as { workers: { stages: Map<number, { optimizer: unknown }> }[] }).workers.flatMap((w) => [...w.stages]);
      let checked = 0;
      for (const [s, ps] of stages) {
        if (!ps.optimizer) continue;
        assert.ok(ps.optimizer instanceof SpikeCompensatedSGD);
        for (const g of ps.optimizer.groups) assert.equal(g.hyper.delay, measured[s], `SC delay of stage ${s}`);
        checked++;
      }
      assert.ok(checked >= 3);
    } finally {
      await ex.close();
    }
  }
});

test("async with weight gradients once per STEP: same training as per micro-batch (rounding only), threads equal inline bit for bit", async () => {
  for (const c of CASES.filter((x) => ["stash", "2bw", "pipemare T1+T2", "pb SC+LWP, batch size 1"].includes(x.name))) {
    const steps = 12;
    const plain = setupOf(c, steps);
    const stacked: PipelineSetup = { ...plain, schedule: generateSchedule("async", { stages: c.S, microbatches: c.M, steps, weightGrads: "step" }) };
    const batches = data(steps, c.M, c.perMicro);
    const initial = createModel(c.spec ?? MLP, SEED).stateDict();
    const runs = [];
    for (const setup of [plain, stacked]) {
      const model = createModel(c.spec ?? MLP, SEED);
      const ex = new InlineExecutor(model, setup);
      try { runs.push(await ex.run(batches)); } finally { await ex.close(); }
      runs.push(model.stateDict());
    }
    const [, wPlain, , wStacked] = runs as [unknown, Map<string, Tensor>, unknown, Map<string, Tensor>];
    let moved = false;
    for (const [k, t] of wPlain) {
      const s = wStacked.get(k)!;
      const scale = Math.max(...t.data.map(Math.abs));
      t.data.forEach((v, i) => assert.ok(Math.abs(v - s.data[i]) <= 1e-5 * scale, `${c.name} ${k}[${i}]: ${v} vs ${s.data[i]}`));
      if (s.data.some((v, i) => v !== initial.get(k)!.data[i])) moved = true;
    }
    assert.ok(moved, `${c.name}: training changed no weight`);
    // threads == inline, bit for bit, with the stacked weight gradients.
    const model = createModel(c.spec ?? MLP, SEED);
    const inline = new InlineExecutor(model, stacked);
    const threads = await ThreadsExecutor.create(stacked, initial);
    try {
      const a = await inline.run(batches), b = await threads.run(batches);
      assert.deepEqual(b.perMicrobatch.map((m) => m.loss), a.perMicrobatch.map((m) => m.loss), c.name);
      const wa = await inline.stateDict(), wb = await threads.stateDict();
      for (const [k, t] of wa) assert.deepEqual(wb.get(k)!.data, t.data, `${c.name}: ${k} differs between inline and threads`);
    } finally {
      await threads.close();
      await inline.close();
    }
  }
});
