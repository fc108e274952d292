// Naive asynchronous: forward and backward both use whatever weights are live when they run, so a
// micro-batch's backward sees weights up to tau updates newer than its forward (inconsistent).
import { PolicyBase, checkMicrobatch, type PolicyContext } from "./policy.js";
import type { WeightSet } from "./vec.js";

export class NaivePolicy extends PolicyBase {
  readonly name = "naive" as const;

  constructor(ctx: PolicyContext) {
    super(ctx, "naive policy");
  }

  forwardWeights(mb: number): WeightSet { checkMicrobatch(this.name, mb); return this.live; }
  backwardWeights(mb: number): WeightSet { checkMicrobatch(this.name, mb); return this.live; }
  beforeStep(): void {}
  afterStep(): void {}
  describe(): string { return "naive (current weights for forward and backward)"; }
  protected extraSets(): number { return 0; }
}
