// createModel(spec, seed) and the shared benchmark configurations.
import { Rng } from "../../tensor/random.js";
import type { Module } from "../module.js";
import { Model } from "./model.js";
import { mlpUnits } from "./mlp.js";
import { cnnUnits } from "./cnn.js";
import { vitUnits } from "./vit.js";
import { gptUnits } from "./gpt.js";
import { inputShape, numClasses, resolveSpec, type ModelName, type ModelSpec, type ResolvedSpec } from "./spec.js";
import { AbsentUnit } from "./absent-unit.js";

export { Model, MODEL_UNIT_PREFIX } from "./model.js";
export { AbsentUnit } from "./absent-unit.js";
export { PatchEmbedding, TokenMean } from "./vit.js";
export { TokenPositionEmbedding } from "./gpt.js";
export * from "./spec.js";

/** The spec's units in order; each is made, drawing its weights from `rng`, when it is reached. */
function unitsOf(s: ResolvedSpec, rng: Rng): Iterable<Module> {
  switch (s.name) {
    case "mlp": return mlpUnits(s, rng);
    case "cnn": return cnnUnits(s, rng);
    case "vit": return vitUnits(s, rng);
    case "gpt": return gptUnits(s, rng);
  }
}

/** Builds a model from its JSON spec; all initial weights come from Rng(seed), so workers agree. */
export function createModel(spec: ModelSpec, seed: number): Model {
  const s = resolveSpec(spec);
  return new Model(s, [...unitsOf(s, new Rng(seed))]);
}

/**
 * The model with only the units `keep` selects; the others are AbsentUnits (their count and names,
 * no tensors). The kept units get the bits createModel gives them: every unit is made in order
 * (drawing the same random numbers), and one not kept is dropped at once, so at most one foreign
 * unit is alive at a time.
 */
export function createModelPart(spec: ModelSpec, seed: number, keep: (unit: number) => boolean): Model {
  const s = resolveSpec(spec);
  const units: Module[] = [];
  for (const u of unitsOf(s, new Rng(seed))) units.push(keep(units.length) ? u : new AbsentUnit(units.length, u));
  return new Model(s, units);
}

export interface BenchConfig {
  model: ModelName;
  spec: ModelSpec;
  batch: number;
  /** Input batch shape: images [B, 1, 28, 28] (mlp flattens them) or token ids [B, T]. */
  inputShape: number[];
  /** Classes per prediction (gpt: vocab, one target per position). */
  classes: number;
}

/** A benchmark configuration for any (sized) model: random inputs of its input shape. */
export function benchConfigOf(spec: ModelSpec, batch: number): BenchConfig {
  const s = resolveSpec(spec);
  return { model: s.name, spec: s, batch, inputShape: inputShape(s, batch), classes: numClasses(s) };
}

/** The three `pipewright bench engine` configurations; scripts/torch_models.py holds the same ones, so both sides time the same models. */
export const BENCH_CONFIGS: readonly BenchConfig[] = Object.freeze([
  { model: "mlp", spec: { name: "mlp", input: 784, hidden: [1024, 1024], classes: 10 }, batch: 128, inputShape: [128, 1, 28, 28], classes: 10 },
  { model: "cnn", spec: { name: "cnn", channels: [32, 64], hidden: 128, classes: 10, norm: "none" }, batch: 64, inputShape: [64, 1, 28, 28], classes: 10 },
  { model: "gpt", spec: { name: "gpt", vocab: 256, dim: 256, heads: 4, depth: 4, context: 128 }, batch: 16, inputShape: [16, 128], classes: 256 },
]);
