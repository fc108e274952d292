// The WeightPolicy contract (see index.ts for the full description) and the memory accounting every
// policy shares.
import { checkWeightSet, copyInto, weightSetBytes, type WeightSet } from "./vec.js";

export type PolicyName = "naive" | "stash" | "2bw" | "pipemare-correction" | "predict";
export const POLICY_NAMES: readonly PolicyName[] = ["naive", "stash", "2bw", "pipemare-correction", "predict"];

/**
 * The buffers a policy carries from one run of the lists to the next, by name (e.g. "pipemare_u"),
 * one array per parameter in the policy's parameter order. A checkpoint stores them so a resumed run
 * continues exactly; a name left out means "start that buffer as a fresh policy does".
 */
export type PolicyState = Record<string, WeightSet>;

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
  /**
   * Copies of the buffers that outlive a drained run of the lists (no micro-batch in flight, not
   * between beforeStep and afterStep; throws otherwise).
   */
  saveState(): PolicyState;
  /** Restores saveState()'s output (same parameters); absent names keep their fresh values. */
  loadState(state: PolicyState): void;
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

  /** Names of the buffers saveState() returns (none by default: the policy keeps nothing across runs). */
  protected stateBuffers(): Record<string, WeightSet> { return {}; }
  /** Throws unless the policy is between runs of the lists (nothing in flight, not mid-step). */
  protected checkSettled(): void {}

  saveState(): PolicyState {
    this.checkSettled();
    const out: Record<string, WeightSet> = {};
    for (const [name, ws] of Object.entries(this.stateBuffers())) out[name] = ws.map((a) => a.slice());
    return out;
  }

  loadState(state: PolicyState): void {
    this.checkSettled();
    const mine = this.stateBuffers();
    for (const [name, ws] of Object.entries(state)) {
      const dst = mine[name];
      if (!dst) throw new Error(`${this.name}: saved state has buffer '${name}', this policy keeps ${Object.keys(mine).join(", ") || "none"}`);
      if (ws.length !== dst.length) throw new Error(`${this.name}: saved buffer '${name}' has ${ws.length} parameter arrays, the stage ${dst.length}`);
      ws.forEach((a, i) => {
        if (a.length !== dst[i].length) throw new Error(`${this.name}: saved buffer '${name}' of parameter ${i} has ${a.length} elements, the parameter ${dst[i].length}`);
      });
      copyInto(dst, ws);
    }
    this.afterLoad();
  }

  /** Drops caches derived from the loaded buffers. */
  protected afterLoad(): void {}

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

