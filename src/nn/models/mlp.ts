// Multi-layer perceptron: Flatten, (Linear, ReLU) per hidden size, Linear.
import type { Rng } from "../../tensor/random.js";
import type { Module } from "../module.js";
import { Flatten, ReLU } from "../activation.js";
import { Linear } from "../linear.js";
import type { ResolvedSpec } from "./spec.js";

/** The units in order, each made (and its weights drawn from `rng`) when it is reached. */
export function* mlpUnits(spec: ResolvedSpec<"mlp">, rng: Rng): Generator<Module> {
  yield new Flatten();
  let width = spec.input;
  for (const h of spec.hidden) {
    yield new Linear(width, h, rng);
    yield new ReLU();
    width = h;
  }
  yield new Linear(width, spec.classes, rng);
}
