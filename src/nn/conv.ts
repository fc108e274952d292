// Convolutions with PyTorch's layouts, init and state-dict names: Conv2d over NCHW inputs with weight
// [out, in, kh, kw] (square or rectangular kernels) and Conv1d over [N, C, L] with weight [out, in, k].
import { conv1d, conv2d } from "../autograd/index.js";
import type { Tensor } from "../tensor/tensor.js";
import type { Rng } from "../tensor/random.js";
import { Module } from "./module.js";
import { biasUniform, kaimingUniformDefault } from "./init.js";
import { checkNonNegativeInt, checkPositiveInt } from "./validate.js";

/** A size for both spatial axes, or [height, width] (like PyTorch's int or tuple). */
export type Size2d = number | readonly [number, number];

export interface Conv2dOptions { stride?: Size2d; padding?: Size2d; bias?: boolean }

export interface Conv1dOptions { stride?: number; padding?: number; bias?: boolean }

/** [h, w] from a Size2d, each element checked with `check`. */
function pairOf(what: string, v: Size2d, check: (what: string, v: number) => void): [number, number] {
  if (typeof v === "number") { check(what, v); return [v, v]; }
  if (!Array.isArray(v) || v.length !== 2) throw new Error(`${what} must be a number or a pair [height, width], got ${JSON.stringify(v)}`);
  check(`${what}[0]`, v[0]);
  check(`${what}[1]`, v[1]);
  return [v[0], v[1]];
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: Size2d;
  readonly padding: Size2d;

  /** kernelSize: k for a k x k kernel, or [kh, kw]; stride and padding likewise (a number or [h, w]). */
  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: Size2d, rng: Rng,
    options: Conv2dOptions = {}) {
    super();
    checkPositiveInt("Conv2d inChannels", inChannels);
    checkPositiveInt("Conv2d outChannels", outChannels);
    const [kh, kw] = pairOf("Conv2d kernelSize", kernelSize, checkPositiveInt);
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    pairOf("Conv2d stride", this.stride, checkPositiveInt);
    pairOf("Conv2d padding", this.padding, checkNonNegativeInt);
    const shape = [outChannels, inChannels, kh, kw];
    this.weight = this.registerParameter("weight", kaimingUniformDefault(shape, rng));
    this.bias = (options.bias ?? true)
      ? this.registerParameter("bias", biasUniform(outChannels, inChannels * kh * kw, rng)) : null;
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

/** torch.nn.Conv1d: input [N, inChannels, L] -> [N, outChannels, floor((L + 2*padding - k) / stride) + 1]. */
export class Conv1d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly stride: number;
  readonly padding: number;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, rng: Rng,
    options: Conv1dOptions = {}) {
    super();
    checkPositiveInt("Conv1d inChannels", inChannels);
    checkPositiveInt("Conv1d outChannels", outChannels);
    checkPositiveInt("Conv1d kernelSize", kernelSize);
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    checkPositiveInt("Conv1d stride", this.stride);
    checkNonNegativeInt("Conv1d padding", this.padding);
    this.weight = this.registerParameter("weight", kaimingUniformDefault([outChannels, inChannels, kernelSize], rng));
    this.bias = (options.bias ?? true)
      ? this.registerParameter("bias", biasUniform(outChannels, inChannels * kernelSize, rng)) : null;
  }

  forward(x: Tensor): Tensor {
    return conv1d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}
