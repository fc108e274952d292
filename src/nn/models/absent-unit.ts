// A unit another process holds. An MPI rank builds only its own stages' units; in the model's other
// places it keeps what the whole model's bookkeeping needs of them (how many parameters, under which
// names), but no tensors. Running or reading its weights is an error naming the unit.
import type { Tensor } from "../../tensor/tensor.js";
import { Module } from "../module.js";

export class AbsentUnit extends Module {
  /** Parameter names relative to the unit ("weight", "attn.qkv.bias"), in the unit's order. */
  readonly parameterNames: readonly string[];
  private readonly count: number;

  /** The record of `unit` (which the caller then drops). */
  constructor(readonly index: number, unit: Module) {
    super();
    this.parameterNames = unit.namedParameters().map(([n]) => n);
    this.count = unit.numParameters();
  }

  forward(_x: Tensor): Tensor {
    throw new Error(`unit ${this.index} is held by another process; this one cannot run it`);
  }

  override numParameters(): number { return this.count; }
}
