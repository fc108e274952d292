// Binds a stage's policy to its live parameter arrays: before F/B the weights the policy chose are
// swapped into the live arrays (exact, no copy buffer), after F/B swapped back. `weightHooks` turns a
// set of binders into the runtime's hook object (structurally: beforeForward/afterForward/
// beforeBackward/afterBackward/beforeStep/afterStep taking the physical stage first), so the
// interpreter needs no knowledge of policies.
import type { WeightPolicy } from "./policy.js";
import { swapContents, type WeightSet } from "./vec.js";

export class PolicyBinder {
  /** Set swapped into the live arrays right now (null: live arrays hold the live weights). */
  private bound: WeightSet | null = null;
  private boundFor = "";

  constructor(readonly policy: WeightPolicy, readonly live: WeightSet) {}

  beginForward(mb: number): void { this.bind(this.policy.forwardWeights(mb), `forward of micro-batch ${mb}`); }
  endForward(mb: number): void { this.unbind(`forward of micro-batch ${mb}`); }
  beginBackward(mb: number): void { this.bind(this.policy.backwardWeights(mb), `backward of micro-batch ${mb}`); }
  endBackward(mb: number): void { this.unbind(`backward of micro-batch ${mb}`); }

  beforeStep(): void {
    if (this.bound) throw new Error(`${this.policy.name}: optimizer step while the weights of the ${this.boundFor} are swapped in`);
    this.policy.beforeStep();
  }

  afterStep(): void { this.policy.afterStep(); }

  private bind(ws: WeightSet, what: string): void {
    if (this.bound) throw new Error(`${this.policy.name}: ${what} started while the weights of the ${this.boundFor} are still swapped in`);
    if (ws === this.live) return;
    swapContents(this.live, ws);
    this.bound = ws;
    this.boundFor = what;
  }

  private unbind(what: string): void {
    if (!this.bound) return;
    if (this.boundFor !== what) throw new Error(`${this.policy.name}: ${what} ended while the ${this.boundFor} is bound`);
    swapContents(this.live, this.bound);
    this.bound = null;
  }
}

/** Hooks for the runtime interpreter: binders by physical stage index (stages without one are skipped). */
export function weightHooks(binders: ReadonlyMap<number, PolicyBinder>) {
  const of = (stage: { readonly index: number }): PolicyBinder | undefined => binders.get(stage.index);
  return {
    beforeForward(stage: { readonly index: number }, _chunk: number, mb: number): void { of(stage)?.beginForward(mb); },
    afterForward(stage: { readonly index: number }, _chunk: number, mb: number): void { of(stage)?.endForward(mb); },
    beforeBackward(stage: { readonly index: number }, _chunk: number, mb: number): void { of(stage)?.beginBackward(mb); },
    afterBackward(stage: { readonly index: number }, _chunk: number, mb: number): void { of(stage)?.endBackward(mb); },
    beforeStep(stage: { readonly index: number }): void { of(stage)?.beforeStep(); },
    afterStep(stage: { readonly index: number }): void { of(stage)?.afterStep(); },
  };
}
