// The model shape every pipeline relies on: one child `layers` (a Sequential) whose top-level
// children are the units a pipeline partitions, each Tensor -> Tensor.
import type { Tensor } from "../../tensor/tensor.js";
import { Module, Sequential } from "../module.js";
import type { ResolvedSpec } from "./spec.js";
import { AbsentUnit } from "./absent-unit.js";

/** State-dict prefix of a built-in model's units: "layers.3.weight". */
export const MODEL_UNIT_PREFIX = "layers";

export class Model extends Module {
  readonly layers: Sequential;
  /** State-dict prefix of the units: "layers.3.weight". */
  readonly unitPrefix = MODEL_UNIT_PREFIX;

  constructor(readonly spec: ResolvedSpec, units: Module[]) {
    super();
    this.layers = this.registerModule(MODEL_UNIT_PREFIX, new Sequential(units));
  }

  forward(x: Tensor): Tensor { return this.layers.forward(x); }

  /** The partitionable units, in order. */
  get units(): readonly Module[] { return this.layers.layers; }

  /** Every unit's count, also of units another process holds (AbsentUnit). */
  override numParameters(): number { return this.units.reduce((n, u) => n + u.numParameters(), 0); }

  /** Every parameter's state-dict name in model order, also of units another process holds. */
  parameterNames(): string[] {
    return this.units.flatMap((u, i) => {
      const prefix = `${MODEL_UNIT_PREFIX}.${i}`;
      return u instanceof AbsentUnit ? u.parameterNames.map((n) => `${prefix}.${n}`) : u.namedParameters(prefix).map(([n]) => n);
    });
  }

  /** True when some unit is held by another process (a part built by createModelPart). */
  get partial(): boolean { return this.units.some((u) => u instanceof AbsentUnit); }
}
