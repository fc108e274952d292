// Binds a stage's policy to its live parameter arrays: before F/B the weights the policy chose are
// swapped into the live arrays (exact, no copy buffer), after F/B swapped back. `weightHooks` turns a
// set of binders into the runtime's hook object (structurally: beforeForward/afterForward/
// beforeBackward/afterBackward/beforeStep/afterStep taking the physical stage first), so the
// interpreter needs no knowledge of policies.
import type { WeightPolicy } from "./policy.js";
import { swapContents, type WeightSet } from "./vec.js";

type Pass = "forward" | "backward";

export class PolicyBinder {
  /** Set swapped into the live arrays right now (null: live arrays hold the live weights). */
  private bound: WeightSet | null = null;
  /** The pass (and its micro-batch) that bound it; kept as data so the hot path builds no strings. */
  private boundPass: Pass = "forward";
  private boundMb = -1;

  constructor(readonly policy: WeightPolicy, readonly live: WeightSet) {}

  beginForward(mb: number): void { this.bind(this.policy.forwardWeights(mb), "forward", mb); }
  endForward(mb: number): void { this.unbind("forward", mb); }
  beginBackward(mb: number): void { this.bind(this.policy.backwardWeights(mb), "backward", mb); }
  endBackward(mb: number): void { this.unbind("backward", mb); }

  beforeStep(): void {
    if (this.bound) throw new Error(`${this.policy.name}: optimizer step while the weights of the ${this.boundWhat()} are swapped in`);
    this.policy.beforeStep();
  }

  afterStep(): void { this.policy.afterStep(); }

  private bind(ws: WeightSet, pass: Pass, mb: number): void {
    if (this.bound) throw new Error(`${this.policy.name}: ${pass} of micro-batch ${mb} started while the weights of the ${this.boundWhat()} are still swapped in`);
    if (ws === this.live) return;
    swapContents(this.live, ws);
    this.bound = ws;
    this.boundPass = pass;
    this.boundMb = mb;
  }

  private unbind(pass: Pass, mb: number): void {
    if (!this.bound) return;
    if (this.boundPass !== pass || this.boundMb !== mb) {
      throw new Error(`${this.policy.name}: ${pass} of micro-batch ${mb} ended while the ${this.boundWhat()} is bound`);
    }
    swapContents(this.live, this.bound);
    this.bound = null;
  }

  private boundWhat(): string { return `${this.boundPass} of micro-batch ${this.boundMb}`; }
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
