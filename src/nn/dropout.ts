// Inverted dropout with its own seeded stream, so runs (and pipeline replays) are reproducible.
import { dropout } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { Rng } from "../tensor/random.js";
import { Module } from "./module.js";
import { checkProbability } from "./validate.js";

export class Dropout extends Module {
  rng: Rng;

  constructor(readonly p: number, seed = 0) {
    super();
    checkProbability("Dropout p", p);
    this.rng = new Rng(seed);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, this.p, this.rng, true);
  }
}
