// Parameter-free element-wise and reshaping modules.
import { flatten, gelu, relu, tanh } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { Module } from "./module.js";

export class ReLU extends Module {
  forward(x: Tensor): Tensor { return relu(x); }
}

/** Exact (erf) GELU, torch's default approximate='none'. */
export class GELU extends Module {
  forward(x: Tensor): Tensor { return gelu(x); }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor { return tanh(x); }
}

/** Flattens every dimension from startDim on (torch.nn.Flatten's default start_dim=1). */
export class Flatten extends Module {
  constructor(readonly startDim = 1) { super(); }
  forward(x: Tensor): Tensor { return flatten(x, this.startDim); }
}
