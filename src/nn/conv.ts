// 2-D convolution over NCHW inputs with weight [out, in, k, k] (PyTorch layout and init).
import { conv2d } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../tensor/random.js";
import { Module } from "./module.js";
import { biasUniform, kaimingUniformDefault } from "./init.js";
import { checkNonNegativeInt, checkPositiveInt } from "./validate.js";

export interface Conv2dOptions { stride?: number; padding?: number; bias?: boolean }

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number;
  readonly padding: number;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, rng: Rng,
    options: Conv2dOptions = {}) {
    super();
    checkPositiveInt("Conv2d inChannels", inChannels);
    checkPositiveInt("Conv2d outChannels", outChannels);
    checkPositiveInt("Conv2d kernelSize", kernelSize);
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    checkPositiveInt("Conv2d stride", this.stride);
    checkNonNegativeInt("Conv2d padding", this.padding);
    const shape = [outChannels, inChannels, kernelSize, kernelSize];
    this.weight = this.registerParameter("weight", kaimingUniformDefault(shape, rng));
    this.bias = (options.bias ?? true)
      ? this.registerParameter("bias", biasUniform(outChannels, inChannels * kernelSize * kernelSize, rng)) : null;
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}
