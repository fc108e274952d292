// Evaluation through the pipeline (forward-only lists): after training steps, the executor's summed
// loss / correct count / targets and its outputs equal evaluating the gathered weights on one device
// in eval mode (the oracle: model.forward), for every synchronous schedule on inline and threads,
// with BatchNorm (running statistics, not the batch's) and dropout (off in eval mode).
import { test } from "node:test";
import assert from "node:assert/strict";
import { noGrad } from "../src/autograd/engine.js";
import { splitBatch } from "../src/data/microbatch.js";
import { countCorrect, crossEntropyLoss } from "../src/nn/loss.js";
import { createModel, resolveSpec, type ModelSpec } from "../src/nn/models/index.js";
import { Model } from "../src/nn/models/model.js";
import { Dropout } from "../src/nn/dropout.js";
import { Flatten, ReLU } from "../src/nn/activation.js";
import { Linear } from "../src/nn/linear.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { ThreadsExecutor } from "../src/pipeline/runtime/threads.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import type { Executor } from "../src/pipeline/runtime/executor.js";
import { formatSchedule, forwardOnlyLists, generateSchedule, validateSchedule } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

const SEED = 3;
const CNN_BN: ModelSpec = { name: "cnn", image: 8, inChannels: 1, channels: [4, 4], hidden: 8, classes: 3, norm: "batch" } as ModelSpec;
const MLP: ModelSpec = { name: "mlp", input: 64, hidden: [32, 32], classes: 3 };

/** The CNN with BatchNorm, or an MLP with dropout layers (built inline: no built-in model has dropout). */
function build(kind: "cnn-bn" | "mlp-dropout"): { model: Model; spec: ModelSpec } {
  if (kind === "cnn-bn") return { model: createModel(CNN_BN, SEED), spec: CNN_BN };
  const rng = new Rng(9);
  const units = [new Flatten(), new Linear(64, 32, rng), new ReLU(), new Dropout(0.5, 1), new Linear(32, 32, rng), new ReLU(),
    new Dropout(0.3, 2), new Linear(32, 3, rng)];
  return { model: new Model(resolveSpec(MLP), units), spec: MLP };
}

function data(n: number, seed: number): { x: Tensor; y: Int32Array } {
  const rng = new Rng(seed);
  return { x: Tensor.randn([n, 1, 8, 8], rng), y: Int32Array.from({ length: n }, () => rng.int(3)) };
}

/** The oracle: the model itself on one device, eval mode, no gradients, chunk by chunk. */
function onDevice(kind: Kind, state: Map<string, Tensor>, chunks: { x: Tensor; y: Int32Array }[]): { loss: number; correct: number; count: number; outputs: Tensor[] } {
  const { model } = build(kind);
  model.loadStateDict(state);
  model.eval();
  const out = { loss: 0, correct: 0, count: 0, outputs: [] as Tensor[] };
  noGrad(() => chunks.forEach(({ x, y }) => {
    const logits = model.forward(x);
    out.loss += crossEntropyLoss(logits, y, "sum").item();
    out.correct += countCorrect(logits, y);
    out.count += y.length;
    out.outputs.push(logits);
  }));
  return out;
}

const CASES = [
  { schedule: "gpipe", S: 2, v: 1 }, { schedule: "1f1b", S: 3, v: 1 }, { schedule: "interleaved", S: 2, v: 2 }, { schedule: "zb-h1", S: 2, v: 1 },
];

type Kind = "cnn-bn" | "mlp-dropout";

for (const kind of ["cnn-bn", "mlp-dropout"] as const) {
  for (const c of CASES) {
    // Worker threads build the model from its source: the inline-built dropout MLP runs inline only.
    for (const executor of kind === "cnn-bn" ? ["inline", "threads"] as const : ["inline"] as const) {
      test(`evaluation through the pipeline == the trained weights on one device: ${kind}, ${c.schedule} S=${c.S} v=${c.v}, ${executor}`, async () => {
        const M = 4;
        const schedule = generateSchedule(c.schedule, { stages: c.S, microbatches: M, chunks: c.v });
        const { model, spec } = build(kind);
        const setup: PipelineSetup = {
          model: spec, seed: SEED, schedule, balance: uniformBalance(model.units.length, c.S * c.v), recompute: "never",
          optimizer: { name: "sgd", lr: 0.1, momentum: 0.9 },
        };
        const ex: Executor = executor === "inline" ? new InlineExecutor(model, setup) : await ThreadsExecutor.create(setup, model.stateDict());
        try {
          for (let s = 0; s < 2; s++) {
            const b = data(16, 10 + s);
            const parts = splitBatch({ x: (b.x), y: b.y }, M);
            await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / 16 });
          }
          // Chunks of different sizes, one of a single row.
          const chunks = [data(24, 20), data(7, 21), data(1, 22)];
          const got = await ex.evaluate({ inputs: chunks.map((k) => (k.x)), labels: chunks.map((k) => k.y) });
          const want = onDevice(kind, await ex.stateDict(), chunks);
          assert.equal(got.count, 32);
          assert.equal(got.correct, want.correct);
          assert.ok(Math.abs(got.loss - want.loss) <= 1e-5 * Math.abs(want.loss), `summed loss ${got.loss} vs ${want.loss} on one device`);
          const outs = await ex.predict(chunks.map((k) => (k.x)));
          outs.forEach((o, j) => {
            assert.deepEqual(o.shape, want.outputs[j].shape);
            for (let i = 0; i < o.size; i++) assert.ok(Math.abs(o.data[i] - want.outputs[j].data[i]) <= 1e-5, `output ${j}[${i}]: ${o.data[i]} vs ${want.outputs[j].data[i]}`);
          });
          // Evaluation changes nothing: the next step trains as if it had not run.
          const again = await ex.evaluate({ inputs: chunks.map((k) => (k.x)), labels: chunks.map((k) => k.y) });
          assert.deepEqual(again, got, "a second evaluation gives the same bits");
        } finally {
          await ex.close();
        }
      });
    }
  }
}

test("evaluation leaves training untouched: steps after an evaluation equal steps without one (dropout and BatchNorm)", async () => {
  for (const kind of ["cnn-bn", "mlp-dropout"] as const) {
    const runOnce = async (withEval: boolean): Promise<Map<string, Tensor>> => {
      const schedule = generateSchedule("1f1b", { stages: 2, microbatches: 4 });
      const { model, spec } = build(kind);
      const ex = new InlineExecutor(model, { model: spec, seed: SEED, schedule, balance: uniformBalance(model.units.length, 2), recompute: "never", optimizer: { name: "sgd", lr: 0.1 } });
      for (let s = 0; s < 3; s++) {
        const b = data(16, 30 + s);
        const parts = splitBatch({ x: (b.x), y: b.y }, 4);
        await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / 16 });
        if (withEval) await ex.evaluate({ inputs: [(data(9, 40).x)], labels: [data(9, 40).y] });
      }
      const st = await ex.stateDict();
      await ex.close();
      return st;
    };
    const a = await runOnce(false), b = await runOnce(true);
    for (const [k, t] of a) assert.deepEqual(Buffer.from(b.get(k)!.data.buffer), Buffer.from(t.data.buffer), `${kind}: ${k} differs after evaluations`);
  }
});

test("forward-only lists: each worker runs every virtual stage it holds once per micro-batch, in model order", () => {
  const schedule = generateSchedule("interleaved", { stages: 2, microbatches: 4, chunks: 2 });
  const training = formatSchedule(schedule);
  const lists = forwardOnlyLists(schedule, 3);
  assert.deepEqual(lists.map((l) => l.map((a) => `${a.stage}F${a.microbatch}c${a.chunk}`)), [
    ["0F0c0", "0F0c1", "0F1c0", "0F1c1", "0F2c0", "0F2c1"],
    ["1F0c0", "1F0c1", "1F1c0", "1F1c1", "1F2c0", "1F2c1"],
  ]);
  assert.throws(() => forwardOnlyLists(schedule, -1), /whole number of micro-batches/);
  // The training lists are untouched (and still a valid schedule).
  assert.equal(formatSchedule(schedule), training);
  assert.deepEqual(validateSchedule(schedule).errors, []);
});
