// Asynchronous methods on the runtime: from the plain-JSON `AsyncSetup` in a PipelineSetup (so a
// worker thread rebuilds exactly the same thing), each physical stage gets its weight policy (bound
// to its live parameter arrays through WeightHooks), its PipeMare T1 learning-rate factor and, for
// Pipelined Backpropagation, a SpikeCompensatedSGD with D = tau_s. The delays tau_s are measured
// from the schedule IR by the caller (asyncSetupFor) and carried in the setup.
import { measureDelays } from "../schedule/delays.js";
import type { Schedule } from "../schedule/action.js";
import type { Tensor } from "../../tensor/tensor.js";
import {
  type AsyncConfig, type WeightPolicy,
  createWeightPolicy, PolicyBinder, SpikeCompensatedSGD, stageLrFactor, weightHooks, weightSetBytes,
} from "../weights/index.js";
import type { PhysicalStage, StageOptimizer, WeightHooks } from "./interpreter.js";
import type { OptimizerConfig } from "../../optim/index.js";
import type { AsyncStageMeta, AsyncState } from "./async-state.js";

/** What every executor needs to rebuild the asynchronous method of each stage (plain JSON). */
export interface AsyncSetup {
  config: AsyncConfig;
  /** "warmup": synchronous epochs before going asynchronous (no policy; PB's optimizer with D = 0). */
  phase: "warmup" | "async";
  /** tau_s per physical stage, measured from the schedule (measureDelays(...).perStage). */
  taus: number[];
  /** PipeMare T1 annealing horizon K in optimizer steps. */
  annealSteps: number;
  /** State to continue from (a resumed checkpoint's), by stage; absent: start from zero. */
  resume?: AsyncState;
}

/** The AsyncSetup of an asynchronous schedule: its measured per-stage delays (at least 1). */
export function asyncSetupFor(schedule: Schedule, config: AsyncConfig, annealSteps: number): AsyncSetup {
  if (schedule.synchronous) throw new Error(`asyncSetupFor: schedule '${schedule.name}' is synchronous`);
  const taus = measureDelays(schedule).perStage.map((t) => Math.max(1, t));
  return { config, phase: "async", taus, annealSteps };
}

/** The named parameters a stage's optimizer updates (same selection as buildWorkerStages). */
function stageParams(chunks: PhysicalStage["chunks"]): [string, Tensor][] {
  return chunks.flatMap((c) => c.namedParameters()).filter(([, p]) => p.requiresGrad);
}

/**
 * PB's optimizer: momentum SGD with Spike Compensation, D = tau_s with SC on, else 0 (plain momentum;
 * also during a synchronous warm-up, so the optimizer state carries over unchanged).
 */
export function spikeOptimizer(cfg: OptimizerConfig, a: AsyncSetup, stage: number, params: [string, Tensor][]): StageOptimizer | null {
  if (params.length === 0) return null;
  if (cfg.name !== "sgd") throw new Error(`--method pb runs momentum SGD (Spike Compensation); got --optimizer ${cfg.name}, use sgd`);
  const tau = a.taus[stage];
  if (tau === undefined) throw new Error(`async setup has no delay for stage ${stage} (${a.taus.length} given)`);
  const delay = spikeDelay(a, stage);
  return new SpikeCompensatedSGD(params, { lr: cfg.lr, momentum: cfg.momentum ?? 0, weightDecay: cfg.weightDecay ?? 0, delay });
}

function spikeDelay(a: AsyncSetup, stage: number): number {
  return a.phase === "async" && a.config.spikeCompensation ? a.taus[stage] : 0;
}

export interface StageMemory {
  stage: number;
  /** Bytes of the live weights, optimizer state and extra weight versions (peak over the run). */
  weights: number;
  optimizerState: number;
  extra: number;
  total: number;
  versions: number;
}

/** Per-stage policies and the hooks that run them; `k` counts this stage's asynchronous updates. */
export class AsyncRuntime {
  readonly hooks: WeightHooks;
  readonly policies = new Map<number, WeightPolicy>();
  private readonly stepsDone = new Map<number, number>();
  /** Parameter names per stage, in the policy's order (the keys of its saved buffers). */
  private readonly paramNames = new Map<number, string[]>();

  constructor(stages: ReadonlyMap<number, PhysicalStage>, readonly setup: AsyncSetup) {
    const binders = new Map<number, PolicyBinder>();
    for (const [s, ps] of stages) {
      const opt = ps.optimizer;
      if (!opt) continue; // no weights, nothing to version
      const named = stageParams(ps.chunks);
      const live = named.map(([, p]) => p.data);
      const policy = createWeightPolicy(setup.config, {
        params: live, tau: setup.taus[s], optimizerStateBytes: () => opt.stateBytes(),
        momentum: opt instanceof SpikeCompensatedSGD ? opt.momentumSource(named.map(([, p]) => p)) : undefined,
      });
      this.policies.set(s, policy);
      binders.set(s, new PolicyBinder(policy, live));
      this.paramNames.set(s, named.map(([n]) => n));
      this.stepsDone.set(s, 0);
      const saved = setup.resume?.stages.find((r) => r.stage === s);
      if (saved) this.restore(s, policy, saved, setup.resume!.buffers);
    }
    const bound = weightHooks(binders);
    this.hooks = {
      ...bound,
      afterStep: (stage) => { bound.afterStep(stage); this.stepsDone.set(stage.index, (this.stepsDone.get(stage.index) ?? 0) + 1); },
      stageLrFactor: (stage) => stageLrFactor(setup.config, setup.taus[stage.index], this.stepsDone.get(stage.index) ?? 0, setup.annealSteps),
    };
  }

  /**
   * Every stage's state between windows (copies), for a checkpoint. Call only between runs of the
   * lists (they drain, so nothing is in flight; the policies check).
   */
  snapshot(): AsyncState {
    const buffers: Record<string, Float32Array> = {};
    const stages = [...this.policies].sort(([a], [b]) => a - b).map(([s, policy]): AsyncStageMeta => {
      const names = this.paramNames.get(s)!;
      const saved = policy.saveState();
      for (const [buf, ws] of Object.entries(saved)) names.forEach((n, i) => { buffers[`${buf}.${n}`] = ws[i]; });
      return { stage: s, steps: this.stepsDone.get(s) ?? 0, policy: policy.name, buffers: Object.keys(saved) };
    });
    return { stages, buffers };
  }

  /** T1's counter always carries over; the buffers only into the same policy (else they start from zero). */
  private restore(s: number, policy: WeightPolicy, saved: AsyncStageMeta, buffers: Readonly<Record<string, Float32Array>>): void {
    this.stepsDone.set(s, saved.steps);
    if (saved.policy !== policy.name) return;
    const names = this.paramNames.get(s)!;
    const state: Record<string, Float32Array[]> = {};
    for (const buf of saved.buffers) {
      state[buf] = names.map((n) => {
        const a = buffers[`${buf}.${n}`];
        if (!a) throw new Error(`async resume: stage ${s} has no saved '${buf}' for parameter '${n}' (checkpoint tensor 'extra.async.${buf}.${n}'); resume with the same --stages and partition`);
        return a;
      });
    }
    policy.loadState(state);
  }
}

/** The async runtime of a worker's stages, or null for a synchronous run (or a warm-up phase). */
export function createAsyncRuntime(stages: ReadonlyMap<number, PhysicalStage>, a: AsyncSetup | undefined): AsyncRuntime | null {
  return a && a.phase === "async" ? new AsyncRuntime(stages, a) : null;
}

/**
 * Peak memory per stage of its weights, optimizer state and extra versions: the accounts of
 * `runtime`'s policies (zero for a stage without weights), else (synchronous) its live weights and optimizer state.
 */
export function stageMemory(stages: ReadonlyMap<number, PhysicalStage>, runtime: AsyncRuntime | null): StageMemory[] {
  return [...stages.keys()].sort((a, b) => a - b).map((s) => {
    const ps = stages.get(s)!, m = runtime?.policies.get(s)?.bytes();
    if (m) return { stage: s, weights: m.weights, optimizerState: m.optimizerState, extra: m.peakExtra, total: m.peakTotal, versions: m.peakVersions };
    if (runtime) return { stage: s, weights: 0, optimizerState: 0, extra: 0, total: 0, versions: 1 };
    const weights = weightSetBytes(stageParams(ps.chunks).map(([, p]) => p.data));
    const optimizerState = ps.optimizer ? ps.optimizer.stateBytes() : 0;
    return { stage: s, weights, optimizerState, extra: 0, total: weights + optimizerState, versions: 1 };
  });
}

/** Start-of-run lines: each stage's delay and what its policy and optimizer do with it. */
export function describeStages(a: AsyncSetup): string[] {
  const c = a.config;
  return a.taus.map((tau, s) => {
    const parts = [`tau=${tau}`, `policy ${c.policy}`];
    if (c.pipemareLr) parts.push(`T1 lr factor ${stageLrFactor(c, tau, 0, a.annealSteps).toPrecision(3)} at k=0 -> 1 at k=${a.annealSteps}`);
    if (c.pipemareCorrection) parts.push(`T2 gamma=${(c.gamma ?? Math.pow(c.decay, 1 / tau)).toPrecision(4)}`);
    if (c.method === "pb") parts.push(`SC D=${spikeDelay(a, s)}`, c.weightPrediction ? `LWP D=${tau}` : "no LWP");
    return `  stage ${s}: ${parts.join(", ")}`;
  });
}
