// Resume merging in the library (src/train/resume.ts), without the CLI: options given now against
// the checkpoint's saved run. The CLI's own tests (train.test.ts) cover the same rules through
// flags; these call the library with plain option objects and check its ConfigError.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, mergePipelineConfig, mergeTrainConfig, savedPipelineConfig } from "../src/train/resume.js";
import { savedTrainConfig, type PipelineConfig, type TrainConfig } from "../src/train/options.js";
import { resolveSpec } from "../src/nn/models/spec.js";

const saved: TrainConfig = {
  model: "gpt", spec: { name: "gpt", dim: 16, heads: 2, depth: 2, context: 16 }, epochs: 2, batch: 4, optimizer: { name: "adamw", lr: 0.01, weightDecay: 0.01 },
  scheduleLr: "cosine", warmup: 3, seed: 5, stepsPerEpoch: 2, logEvery: 1,
};
const configError = (re: RegExp) => (e: Error) => e instanceof ConfigError && re.test(e.message);

test("mergeTrainConfig: given options win, the rest come from the saved run, then from the model's defaults", () => {
  const r = mergeTrainConfig({ epochs: 4, lr: 0.5 }, new Set(["epochs", "lr"]), saved);
  assert.deepEqual({ ...r }, { ...saved, epochs: 4, optimizer: { ...saved.optimizer, lr: 0.5 }, save: undefined, resume: undefined, metrics: undefined, data: undefined,
    limit: undefined, text: undefined });
  const fresh = mergeTrainConfig({ model: "cnn", epochs: 5 }, new Set(["model"]));
  assert.equal(fresh.batch, 64);
  assert.equal(fresh.spec, undefined);
  assert.throws(() => mergeTrainConfig({ model: "mlp", epochs: 5 }, new Set(["model"]), saved), configError(/--model mlp does not match the checkpoint, which holds a gpt model/));
  assert.throws(() => mergeTrainConfig({ epochs: 5, data: "slice" }, new Set(["data"]), saved), configError(/--data is for the image models/));
});

test("mergeTrainConfig: a sized spec must be the checkpoint's model when resuming, and must fit the task", () => {
  const same = resolveSpec(saved.spec!);
  assert.deepEqual(mergeTrainConfig({ epochs: 2 }, new Set(), saved, same).spec, same);
  const deeper = resolveSpec({ ...saved.spec!, name: "gpt", depth: 3 });
  assert.throws(() => mergeTrainConfig({ epochs: 2 }, new Set(), saved, deeper), configError(/checkpoint holds gpt .*depth 2.*describe gpt .*depth 3/));
  assert.throws(() => mergeTrainConfig({ epochs: 2 }, new Set(), saved, resolveSpec({ name: "vit" })), configError(/describe a vit model but the checkpoint holds a gpt model/));
  assert.throws(() => mergeTrainConfig({ epochs: 2 }, new Set(), undefined, resolveSpec({ name: "cnn", classes: 7 })),
    configError(/classes 7 does not fit Fashion-MNIST/));
  assert.equal(mergeTrainConfig({ epochs: 2 }, new Set(), undefined, resolveSpec({ name: "cnn", channels: [4] })).model, "cnn", "the spec names the model");
});

test("mergePipelineConfig and savedPipelineConfig: the saved pipeline continues unless told otherwise", () => {
  const p: PipelineConfig = { schedule: "1f1b", stages: 2, microbatches: 2, chunks: 1, partition: "uniform", executor: "threads", recompute: "never" };
  assert.deepEqual(mergePipelineConfig({}, new Set(), p), { ...p, balance: undefined, weightGrads: "microbatch" });
  assert.deepEqual(mergePipelineConfig({ stages: 4 }, new Set(["stages"]), p)?.stages, 4);
  assert.equal(mergePipelineConfig({ schedule: "none" }, new Set(["schedule"]), p), null);
  assert.throws(() => mergePipelineConfig({ stages: 2 }, new Set(["stages"])), configError(/--stages only apply to pipeline training; add --schedule/));
  assert.deepEqual(savedPipelineConfig("x.safetensors", { pipeline: p } as never), p);
  assert.equal(savedPipelineConfig("x.safetensors", {} as never), undefined);
  assert.throws(() => savedPipelineConfig("x.safetensors", { pipeline: { ...p, stages: 0 } } as never),
    configError(/checkpoint x.safetensors: its saved pipeline configuration .* is not valid; resume it on one device with --schedule none/));
});

test("a checkpoint config saved with flat optimizer fields (before TrainConfig held an OptimizerConfig) reads as the same config", () => {
  const flat = { ...saved, optimizer: "adamw" as const, lr: 0.01, momentum: 0.9, weightDecay: 0.01 };
  assert.deepEqual(savedTrainConfig(flat), saved);
  const sgd = savedTrainConfig({ ...saved, optimizer: "sgd" as const, lr: 0.1, momentum: 0.5, weightDecay: 0 });
  assert.deepEqual(sgd.optimizer, { name: "sgd", lr: 0.1, momentum: 0.5, weightDecay: 0 });
  assert.equal(savedTrainConfig(saved), saved);
});
