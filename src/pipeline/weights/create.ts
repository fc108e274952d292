// Per-stage instantiation of an AsyncConfig: the stage's weight policy and its optimizer transforms,
// all derived from the stage's delay tau (measured from the schedule IR by the caller).
import type { AsyncConfig } from "./config.js";
import { CorrectionPolicy } from "./correct.js";
import { pipemareLrFactor } from "./lr-rescale.js";
import { NaivePolicy } from "./naive.js";
import { checkTau, type PolicyContext, type WeightPolicy } from "./policy.js";
import { PredictPolicy, type MomentumSource } from "./predict.js";
import { StashPolicy } from "./stash.js";

export interface StageWeightsOptions extends PolicyContext {
  /** The stage's delay in optimizer updates (>= 1). */
  tau: number;
  /** Needed by the predict policy in velocity form (SpikeCompensatedSGD.momentumSource()). */
  momentum?: MomentumSource;
}

export function createWeightPolicy(cfg: AsyncConfig, o: StageWeightsOptions): WeightPolicy {
  checkTau(`${cfg.method} stage weights`, o.tau);
  const ctx: PolicyContext = { params: o.params, optimizerStateBytes: o.optimizerStateBytes };
  switch (cfg.policy) {
    case "naive": return new NaivePolicy(ctx);
    case "stash": return new StashPolicy(ctx, { name: "stash" });
    case "2bw": return new StashPolicy(ctx, { name: "2bw", maxVersions: 2 });
    case "pipemare-correction":
      return new CorrectionPolicy(ctx, { tau: o.tau, decay: cfg.decay, gamma: cfg.gamma ?? undefined });
    case "predict":
      return new PredictPolicy(ctx, { horizon: o.tau, mode: cfg.predictionMode, momentum: o.momentum });
    default:
      throw new Error(`unknown weight policy '${String(cfg.policy)}'`);
  }
}

/**
 * The factor on the base lr of a stage with delay tau at step k, counted from the start of
 * asynchronous training (T1 when on, else 1). K: annealing horizon in steps (annealSteps(cfg, ...)).
 * Multiply it into the lr the optimizer uses for that step (e.g. setLrFactor(schedule(k) * factor)).
 */
export function stageLrFactor(cfg: AsyncConfig, tau: number, k: number, K: number): number {
  return cfg.pipemareLr ? pipemareLrFactor(k, tau, K) : 1;
}

/** The delay D that the stage's SpikeCompensatedSGD compensates: tau with SC on, 0 (plain momentum) off. */
export function stageSpikeDelay(cfg: AsyncConfig, tau: number): number {
  checkTau(`${cfg.method} spike compensation`, tau);
  return cfg.spikeCompensation ? tau : 0;
}
