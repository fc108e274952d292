// Weight policies and optimizer transforms of the asynchronous pipeline methods (asynchronous
// schedules and Pipelined Backpropagation). Pure building blocks on Float32Array parameter buffers;
// they know nothing of the runtime.
//
// ## Weight policies (one instance per stage)
//
// A stage's live weights are its parameters' data arrays, one Float32Array per parameter (a
// "WeightSet"), updated in place by the optimizer. The stage calls its policy at these points:
//
//   F of mb:  ws = policy.forwardWeights(mb)   -> run the forward computing with ws
//   B of mb:  ws = policy.backwardWeights(mb)  -> run the backward computing with ws (once per mb)
//   STEP:     policy.beforeStep(); optimizer.step(); policy.afterStep()
//   report:   policy.bytes()  (weights + optimizer state + extra versions, current and peak;
//             pass optimizerStateBytes: () => opt.stateBytes() at construction)
//   between runs of the lists (drained): policy.saveState() / loadState(s), the buffers a checkpoint
//             must keep (correction: "pipemare_u"; predict, difference form: "lwp_prev"; else none)
//
// Create the policies when the stage goes asynchronous (after any synchronous warm-up): stash and
// correction start from the weights they see then (delta = 0).
//
// forwardWeights/backwardWeights return either the live arrays themselves or a buffer the policy
// owns; never write to the latter (except through withWeights, which restores it). Since a Tensor's
// `data` array is fixed, run an action on other weights with withWeights(live, ws, fn): it swaps the
// contents of the live arrays and ws (exact, no copy buffer), runs fn, and swaps back. Autograd
// graphs kept from F read the weight arrays when B runs, so with the swap in place during B they see
// the backward weights whether the stage recomputes its forward or not (only values an op derived
// from the weights during F, like the activations, stay those of F). PolicyBinder does this swap per
// stage, and weightHooks(binders) plugs it into the runtime interpreter's WeightHooks.
//
//   policy               forward          backward                          extra buffers
//   naive                live w           live w (inconsistent)             0
//   stash                live w           the version F used                1 per older version in flight (<= tau)
//   2bw                  live w           the version F used                <= 1 (error if a 3rd is needed)
//   pipemare-correction  live w           w - tau*delta (T2)                1 (u = w - tau*delta)
//   predict              w - lr*D*v, or   live w                            1 (+1 w_prev, difference form)
//                        w + D(w - w_prev)
//
// Stash counts versions, not micro-batches: the micro-batches of one update share a copy, and the
// live weights are the newest version, so a stage holds at most tau+1 versions. 2bw is the same
// mechanism capped at 2: on the async 1F1B IR that means delay 1 on every stage (M >= 2(S-1-s)+1).
//
// ## Optimizer transforms
//
//   pipemareLrFactor(k, tau, K)   T1: lr_{k,s} = lr_k * tau^-(1 - min(k/K, 1)); apply with
//                                 optimizer.setLrFactor(schedule(k) * factor)
//   SpikeCompensatedSGD           SC: v <- m v + g; w <- w - lr (m^D v + (1-m^D)/(1-m) g), D = tau
//                                 (D = 0: plain momentum SGD, so PB without SC uses it with D = 0)
//   scaleForBatch(h, B, b)        m_b = m_B^(b/B), lr_b = lr_B (b/B)(1-m_b)/(1-m_B), coupled weight
//                                 decay coefficient unchanged (= per-step decay scaled by b/B);
//                                 scheduleInSamples() re-counts a schedule in samples
//
// ## Methods and flags
//
// parseAsyncConfig(flagValues) validates the asynchronous flags (ASYNC_FLAGS) into an AsyncConfig naming
// the policy and transforms; createWeightPolicy(cfg, {params, tau, ...}), stageLrFactor and
// stageSpikeDelay instantiate them per stage; describeConfig() is the start-of-run line.
import { swapContents, type WeightSet } from "./vec.js";

export { POLICY_NAMES, type PolicyName, type PolicyState, type WeightPolicy, type MemoryAccount, type PolicyContext } from "./policy.js";
export { type WeightSet, swapContents, copyInto, allocLike, weightSetBytes } from "./vec.js";
export { NaivePolicy } from "./naive.js";
export { StashPolicy } from "./stash.js";
export { CorrectionPolicy, correctionGamma, DEFAULT_PIPEMARE_DECAY, type CorrectionOptions } from "./correct.js";
export { PredictPolicy, PREDICTION_MODES, type PredictionMode, type MomentumSource, type PredictOptions } from "./predict.js";
export { pipemareLrFactor } from "./lr-rescale.js";
export { SpikeCompensatedSGD, SPIKE_SGD_DEFAULTS, spikeCoefficients, type SpikeSgdOptions } from "./spike-compensation.js";
export { scaleForBatch, decayPerStep, scheduleInSamples, type SgdHyper, type ScaledHyper } from "./scaling.js";
export {
  ASYNC_FLAGS, ASYNC_METHODS, DEFAULT_ANNEAL_EPOCHS, parseAsyncConfig, annealSteps, describeConfig,
  type AsyncConfig, type AsyncMethod, type AsyncFlagSpec, type AsyncFlagValues,
} from "./config.js";
export { createWeightPolicy, stageLrFactor, stageSpikeDelay, type StageWeightsOptions } from "./create.js";
export { PolicyBinder, weightHooks } from "./binder.js";

/** Runs fn with the live arrays holding ws (swapped in, swapped back even if fn throws). */
export function withWeights<T>(live: WeightSet, ws: WeightSet, fn: () => T): T {
  if (ws === live) return fn();
  if (ws.length !== live.length) throw new Error(`withWeights: ${ws.length} weight buffers for ${live.length} parameters`);
  for (let i = 0; i < live.length; i++) {
    if (ws[i].length !== live[i].length) throw new Error(`withWeights: buffer ${i} has ${ws[i].length} elements, the parameter ${live[i].length}`);
  }
  swapContents(live, ws);
  try {
    return fn();
  } finally {
    swapContents(live, ws);
  }
}
