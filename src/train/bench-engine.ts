// One engine benchmark: timed training steps (forward + cross-entropy + backward + SGD momentum 0.9)
// of a BENCH_CONFIGS model on random data, the median after warm-up, optionally with a per-kernel
// profile. The same measurement as scripts/bench_torch.py.
import { backward } from "../autograd/engine.js";
import { getBackend, machineCpu, type CpuInfo } from "../backend/index.js";
import { crossEntropyLoss } from "../nn/loss.js";
import { createModel, type BenchConfig, type Model, type ModelSpec } from "../nn/models/index.js";
import { SGD } from "../optim/index.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { profileKernels } from "./kernel-profile.js";
import { median } from "../util/stats.js";

interface KernelShare {
  kernel: string;
  calls_per_step: number;
  ms_per_step: number;
  /** Fraction of the median step. */
  share: number;
}

export interface EngineResult {
  model: string;
  batch: number;
  step_ms: number;
  samples_per_s: number;
  peak_rss_mb: number;
  backend: string;
  steps: number;
  /** The machine it ran on (model, instruction set, cores). */
  cpu: CpuInfo;
  parameters?: number;
  /** The model's spec when it was sized (sizing flags or --model-config). */
  spec?: ModelSpec;
  /** With profiling: time per kernel kind, plus "(outside kernels)" for autograd and allocation. */
  profile?: KernelShare[];
  /** With profiling: mean time per step of forward + loss, backward, and zero-grad + optimizer step. */
  phases_ms?: { forward: number; backward: number; optimizer: number };
}

export interface EngineOptions {
  steps: number; warmup: number; seed: number; profile: boolean;
  /** The configuration is a sized model (its spec goes into the result). */
  sized?: boolean;
}

/** Random inputs and targets for a benchmark configuration (gpt: token ids, then next-token targets). */
export function benchBatch(c: BenchConfig, rng: Rng): { x: Tensor; y: Int32Array } {
  const ids = (n: number): Int32Array => Int32Array.from({ length: n }, () => rng.int(c.classes));
  if (c.model === "gpt") {
    const x = Float32Array.from(ids(c.inputShape[0] * c.inputShape[1]));
    return { x: new Tensor(x, c.inputShape), y: ids(x.length) };
  }
  const y = ids(c.inputShape[0]);
  return { x: Tensor.randn(c.inputShape, rng), y };
}

/** Per-phase time accumulated by a BenchStep run with timePhases. */
interface PhaseTimes { forward: number; backward: number; optimizer: number }
interface BenchStep { step: (timePhases?: boolean) => void; phase: PhaseTimes; model: Model }

/** One training step of a benchmark configuration, ready to run repeatedly (model, data, SGD built once). */
export function benchStep(c: BenchConfig, seed: number): BenchStep {
  const model = createModel(c.spec, seed);
  model.train();
  const opt = new SGD(model.namedParameters(), { lr: 0.01, momentum: 0.9 });
  const { x, y } = benchBatch(c, new Rng(seed + 1));
  // Phases timed separately only when profiling (the plain run times whole steps).
  const phase = { forward: 0, backward: 0, optimizer: 0 };
  const step = (timePhases = false): void => {
    const t0 = timePhases ? performance.now() : 0;
    opt.zeroGrad();
    const loss = crossEntropyLoss(model.forward(x), y);
    const t1 = timePhases ? performance.now() : 0;
    backward(loss);
    const t2 = timePhases ? performance.now() : 0;
    opt.step();
    if (timePhases) {
      phase.forward += t1 - t0;
      phase.backward += t2 - t1;
      phase.optimizer += performance.now() - t2;
    }
  };
  return { step, phase, model };
}

export function benchEngineModel(c: BenchConfig, o: EngineOptions): EngineResult {
  const backend = getBackend();
  const { step, phase, model } = benchStep(c, o.seed);
  for (let i = 0; i < o.warmup; i++) step();
  const times: number[] = [];
  for (let i = 0; i < o.steps; i++) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  const stepMs = median(times);
  const result: EngineResult = {
    model: c.model,
    batch: c.batch,
    step_ms: Number(stepMs.toFixed(3)),
    samples_per_s: Number((c.batch * 1000 / stepMs).toFixed(1)),
    // maxRSS is in kilobytes.
    peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
    backend: backend.name,
    steps: o.steps,
    cpu: machineCpu(),
    parameters: model.numParameters(),
    ...(o.sized ? { spec: model.spec } : {}),
  };
  if (o.profile) {
    // A separate set of steps under the kernel timers, so their overhead never touches step_ms.
    const prof = profileKernels(backend);
    let total = 0;
    try {
      for (let i = 0; i < o.steps; i++) {
        const t0 = performance.now();
        step(true);
        total += performance.now() - t0;
      }
    } finally {
      prof.restore();
    }
    const stats = prof.stats();
    const inKernels = stats.reduce((a, s) => a + s.totalMs, 0);
    const rows = stats.map((s) => ({ kernel: s.kernel, calls: s.calls, ms: s.totalMs }));
    rows.push({ kernel: "(outside kernels)", calls: 0, ms: Math.max(0, total - inKernels) });
    rows.sort((a, b) => b.ms - a.ms);
    const per = (ms: number): number => Number((ms / o.steps).toFixed(3));
    result.phases_ms = { forward: per(phase.forward), backward: per(phase.backward), optimizer: per(phase.optimizer) };
    result.profile = rows.map((r) => ({
      kernel: r.kernel,
      calls_per_step: Number((r.calls / o.steps).toFixed(2)),
      ms_per_step: Number((r.ms / o.steps).toFixed(3)),
      share: Number((r.ms / total).toFixed(4)),
    }));
  }
  return result;
}
