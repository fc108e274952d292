// Fully connected layer y = x W^T + b with W [out, in] (PyTorch layout and init).
import { linear } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../tensor/random.js";
import { Module } from "./module.js";
import { biasUniform, kaimingUniformDefault } from "./init.js";
import { checkPositiveInt } from "./validate.js";

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, bias = true) {
    super();
    checkPositiveInt("Linear inFeatures", inFeatures);
    checkPositiveInt("Linear outFeatures", outFeatures);
    this.weight = this.registerParameter("weight", kaimingUniformDefault([outFeatures, inFeatures], rng));
    this.bias = bias ? this.registerParameter("bias", biasUniform(outFeatures, inFeatures, rng)) : null;
  }

  forward(x: Tensor): Tensor { return linear(x, this.weight, this.bias ?? undefined); }
}
