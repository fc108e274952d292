// Lookup table [num, dim] indexed by integer ids carried as a float tensor (any shape).
import { embedding } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../tensor/random.js";
import { Module } from "./module.js";
import { normal } from "./init.js";
import { checkPositiveInt } from "./validate.js";

export class Embedding extends Module {
  readonly weight: Tensor;

  /** Initialised N(0, std^2); std = 1 is torch's default. */
  constructor(readonly num: number, readonly dim: number, rng: Rng, std = 1) {
    super();
    checkPositiveInt("Embedding num", num);
    checkPositiveInt("Embedding dim", dim);
    this.weight = this.registerParameter("weight", normal([num, dim], rng, std));
  }

  /** ids: a float tensor of integer values, or an Int32Array (see the embedding op). */
  forward(ids: Tensor | Int32Array): Tensor { return embedding(this.weight, ids); }
}
