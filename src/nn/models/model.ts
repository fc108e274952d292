// The model shape every pipeline relies on: one child `layers` (a Sequential) whose top-level
// children are the units a pipeline partitions, each Tensor -> Tensor.
import type { Tensor } from "../../tensor/tensor.js";
import { Module, Sequential } from "../module.js";
import type { ResolvedSpec } from "./spec.js";

export class Model extends Module {
  readonly layers: Sequential;
  /** State-dict prefix of the units: "layers.3.weight". */
  readonly unitPrefix = "layers";

  constructor(readonly spec: ResolvedSpec, units: Module[]) {
    super();
    this.layers = this.registerModule("layers", new Sequential(units));
  }

  forward(x: Tensor): Tensor { return this.layers.forward(x); }

  /** The partitionable units, in order. */
  get units(): readonly Module[] { return this.layers.layers; }
}
