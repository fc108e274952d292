// Convolutional classifier: per stage conv3x3(pad 1) [-> norm] -> ReLU -> MaxPool2, then a 2-layer head.
import type { Rng } from "../../tensor/random.js";
import type { Module } from "../module.js";
import { Flatten, ReLU } from "../activation.js";
import { Conv2d } from "../conv.js";
import { Linear } from "../linear.js";
import { MaxPool2d } from "../pool.js";
import { BatchNorm2d, GroupNorm } from "../norm.js";
import { cnnGroups, type ResolvedSpec } from "./spec.js";

/** The units in order, each made (and its weights drawn from `rng`) when it is reached. */
export function* cnnUnits(spec: ResolvedSpec<"cnn">, rng: Rng): Generator<Module> {
  let c = spec.inChannels, side = spec.image;
  for (const out of spec.channels) {
    // A conv bias before BatchNorm is cancelled by the mean subtraction (its gradient is exactly
    // zero), so it is left out there, as torchvision's models do.
    yield new Conv2d(c, out, 3, rng, { padding: 1, bias: spec.norm !== "batch" });
    if (spec.norm === "batch") yield new BatchNorm2d(out);
    if (spec.norm === "group") yield new GroupNorm(cnnGroups(spec, out), out);
    yield new ReLU();
    yield new MaxPool2d(2);
    c = out;
    side /= 2;
  }
  yield new Flatten();
  yield new Linear(c * side * side, spec.hidden, rng);
  yield new ReLU();
  yield new Linear(spec.hidden, spec.classes, rng);
}
