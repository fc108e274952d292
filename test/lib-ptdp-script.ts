// PTD-P (pipeline x tensor x data parallel) on a small GPT: `node lib-ptdp-script.js EXECUTOR P T D
// SP SCHEDULE OUT [MAXNORM]` (MAXNORM: setup.clipGradNorm, for test/clip.test.ts) trains 3 steps from fixed weights and writes the losses, the weights and the
// optimizer state as float32 bits (rank 0 of a processes run, or the one process), for
// test/ptdp.test.ts. EXECUTOR "inline" is the single-device oracle (one stage, T = D = 1).
import { writeFileSync } from "node:fs";
import { splitBatch } from "../src/data/microbatch.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import type { Executor } from "../src/pipeline/runtime/executor.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

export const SPEC: ModelSpec = { name: "gpt", vocab: 11, dim: 16, heads: 2, depth: 2, context: 8 };
export const SEED = 5;
export const OPT = { name: "sgd", lr: 0.2, momentum: 0.9, weightDecay: 1e-3 } as const;
export const N = 8, STEPS = 3, M = 4, CTX = 8;

/** Fixed mini-batches of N sequences of CTX token ids, next-token targets. */
export function batches(): { x: Tensor; y: Int32Array }[] {
  const rng = new Rng(3);
  return Array.from({ length: STEPS }, () => {
    const ids = Array.from({ length: N * (CTX + 1) }, () => rng.int(11));
    const x: number[] = [], y: number[] = [];
    for (let i = 0; i < N; i++) for (let t = 0; t < CTX; t++) { x.push(ids[i * (CTX + 1) + t]); y.push(ids[i * (CTX + 1) + t + 1]); }
    return { x: Tensor.from(x, [N, CTX]), y: Int32Array.from(y) };
  });
}

export interface Layout { P: number; T: number; D: number; sp: boolean; schedule: string }

export function setupOf(l: Layout, units: number): PipelineSetup {
  const chunks = l.schedule === "interleaved" ? 2 : 1;
  return {
    model: SPEC, seed: SEED, schedule: generateSchedule(l.schedule, { stages: l.P, microbatches: M, chunks }),
    balance: uniformBalance(units, l.P * chunks), recompute: "never", optimizer: OPT,
    tensorParallel: { size: l.T, sequenceParallel: l.sp },
  };
}

const bits = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
const f32 = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0];

export async function train(ex: Executor): Promise<{ losses: number[]; weights: [string, number[]][]; optimizer: string }> {
  const losses: number[] = [];
  for (const b of batches()) {
    const parts = splitBatch(b, M);
    losses.push(f32((await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / (N * CTX) })).loss));
  }
  const state = await ex.stateDict();
  const opt = await ex.optimizerState([...state.keys()]);
  return {
    losses, weights: [...state].map(([k, t]) => [k, bits(t.data)]),
    optimizer: JSON.stringify([...opt.tensors].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => [k, bits(t.data)])),
  };
}

async function main(argv: string[]): Promise<void> {
  const [executor, P, T, D, sp, schedule, out, maxNorm] = argv;
  const layout: Layout = { P: Number(P), T: Number(T), D: Number(D), sp: sp === "sp", schedule };
  const model = createModel(SPEC, SEED);
  const setup = { ...setupOf(layout, model.units.length), ...(maxNorm ? { clipGradNorm: Number(maxNorm) } : {}) };
  let ex: Executor;
  if (executor === "processes") ex = await (await import("../src/pipeline/runtime/processes.js")).ProcessesExecutor.create(setup, { state: model.stateDict() }, layout.D);
  else if (executor === "threads") ex = await (await import("../src/pipeline/runtime/threads.js")).ThreadsExecutor.create(setup, model.stateDict(), layout.D);
  else ex = new (await import("../src/pipeline/runtime/inline.js")).InlineExecutor(model, setup);
  const result = await train(ex);
  await ex.close();
  if (executor === "processes") await (await import("../src/api/spmd.js")).finalizeMpi();
  if (Number(process.env.OMPI_COMM_WORLD_RANK ?? 0) === 0) writeFileSync(out, JSON.stringify(result));
}

// `node --test dist/test/` also loads this fixture (without arguments): then it does nothing.
if (process.argv.length > 2) await main(process.argv.slice(2));
