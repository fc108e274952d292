// The WeightPolicy contract (see index.ts for the full description) and the memory accounting every
// policy shares.
import { checkWeightSet, weightSetBytes, type WeightSet } from "./vec.js";

export type PolicyName = "naive" | "stash" | "2bw" | "pipemare-correction" | "predict";
export const POLICY_NAMES: readonly PolicyName[] = ["naive", "stash", "2bw", "pipemare-correction", "predict"];

/** Memory of one stage in bytes. `extra` counts weight-sized buffers beyond the live weights. */
export interface MemoryAccount {
  /** The live weights (one copy). */
  weights: number;
  /** Optimizer state as reported by the optimizer (momentum buffers, Adam moments). */
  optimizerState: number;
  /** Extra weight-sized buffers held now (stashed versions, velocity, prediction scratch). */
  extra: number;
  /** weights + optimizerState + extra. */
  total: number;
  /** Largest `extra` ever held (what the stage had to allocate). */
  peakExtra: number;
  /** weights + optimizerState + peakExtra. */
  peakTotal: number;
  /** Number of weight versions held now, the live one included (stash: up to tau + 1). */
  versions: number;
  /** Largest `versions` ever held. */
  peakVersions: number;
}

export interface WeightPolicy {
  readonly name: PolicyName;
  /** The weights the forward of micro-batch `mb` must compute with. */
  forwardWeights(mb: number): WeightSet;
  /** The weights the backward of micro-batch `mb` must compute with. Call once per micro-batch. */
  backwardWeights(mb: number): WeightSet;
  /** Call right before the optimizer updates the live weights in place. */
  beforeStep(): void;
  /** Call right after the optimizer update. */
  afterStep(): void;
  bytes(): MemoryAccount;
  /** One line for the start-of-run printout, e.g. "stash (tau=3)". */
  describe(): string;
}

export interface PolicyContext {
  /** The live weights, one buffer per parameter; the optimizer updates these in place. */
  params: WeightSet;
  /** Bytes of the optimizer's state for these parameters (read at bytes() time). */
  optimizerStateBytes?: () => number;
}

/** Accounting shared by the policies: subclasses report how many weight-sized buffers they hold. */
export abstract class PolicyBase implements WeightPolicy {
  abstract readonly name: PolicyName;
  protected readonly live: WeightSet;
  private readonly stateBytes: () => number;
  private readonly setBytes: number;
  private peakExtraSets = 0;
  private peakVersionCount = 1;

  protected constructor(ctx: PolicyContext, what: string) {
    checkWeightSet(ctx.params, what);
    this.live = ctx.params;
    this.stateBytes = ctx.optimizerStateBytes ?? (() => 0);
    this.setBytes = weightSetBytes(ctx.params);
  }

  abstract forwardWeights(mb: number): WeightSet;
  abstract backwardWeights(mb: number): WeightSet;
  abstract beforeStep(): void;
  abstract afterStep(): void;
  abstract describe(): string;
  /** Weight-sized buffers held now beyond the live weights. */
  protected abstract extraSets(): number;
  /** Weight versions held now (live one included); defaults to 1. */
  protected versionCount(): number { return 1; }

  /** Subclasses call this whenever their holdings grow so the peaks are exact. */
  protected notePeak(): void {
    this.peakExtraSets = Math.max(this.peakExtraSets, this.extraSets());
    this.peakVersionCount = Math.max(this.peakVersionCount, this.versionCount());
  }

  bytes(): MemoryAccount {
    this.notePeak();
    const weights = this.setBytes;
    const optimizerState = this.stateBytes();
    const extra = this.extraSets() * this.setBytes;
    const peakExtra = this.peakExtraSets * this.setBytes;
    return {
      weights, optimizerState, extra, total: weights + optimizerState + extra,
      peakExtra, peakTotal: weights + optimizerState + peakExtra,
      versions: this.versionCount(), peakVersions: this.peakVersionCount,
    };
  }
}

/** Throws unless mb is a non-negative integer micro-batch id. */
export function checkMicrobatch(policy: string, mb: number): void {
  if (!Number.isInteger(mb) || mb < 0) throw new Error(`${policy}: micro-batch id must be a non-negative integer, got ${mb}`);
}

/** Throws unless tau is a finite delay >= 1 (async stages always wait at least one update). */
export function checkTau(what: string, tau: number): void {
  if (!Number.isFinite(tau) || tau < 1) throw new Error(`${what}: delay tau must be a finite number >= 1, got ${tau}`);
}

/**
 * Bytes of an optimizer's state from its stateDict (src/optim's SGD and AdamW, SpikeCompensatedSGD).
 * Copies the buffers, so call it when reporting, not per step.
 */
export function optimizerStateBytes(opt: { stateDict(): { tensors: ReadonlyMap<string, { readonly data: Float32Array }> } }): number {
  let n = 0;
  for (const t of opt.stateDict().tensors.values()) n += t.data.byteLength;
  return n;
}
