// Max and average pooling modules (square windows; stride defaults to the kernel size, as in torch).
import { avgPool2d, maxPool2d } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import { Module } from "./module.js";
import { checkNonNegativeInt, checkPositiveInt } from "./validate.js";

abstract class Pool2d extends Module {
  readonly stride: number;

  constructor(readonly kernelSize: number, stride?: number, readonly padding = 0) {
    super();
    this.stride = stride ?? kernelSize;
    checkPositiveInt(`${this.constructor.name} kernelSize`, kernelSize);
    checkPositiveInt(`${this.constructor.name} stride`, this.stride);
    checkNonNegativeInt(`${this.constructor.name} padding`, padding);
  }
}

export class MaxPool2d extends Pool2d {
  forward(x: Tensor): Tensor { return maxPool2d(x, this.kernelSize, this.stride, this.padding); }
}

export class AvgPool2d extends Pool2d {
  forward(x: Tensor): Tensor { return avgPool2d(x, this.kernelSize, this.stride, this.padding); }
}
