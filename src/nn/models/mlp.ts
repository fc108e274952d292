// Multi-layer perceptron: Flatten, (Linear, ReLU) per hidden size, Linear.
import type { Rng } from "../../tensor/random.js";
import type { Module } from "../module.js";
import { Flatten, ReLU } from "../activation.js";
import { Linear } from "../linear.js";
import type { ResolvedSpec } from "./spec.js";

export function mlpUnits(spec: ResolvedSpec<"mlp">, rng: Rng): Module[] {
  const units: Module[] = [new Flatten()];
  let width = spec.input;
  for (const h of spec.hidden) {
    units.push(new Linear(width, h, rng), new ReLU());
    width = h;
  }
  units.push(new Linear(width, spec.classes, rng));
  return units;
}
