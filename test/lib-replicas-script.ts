// Replicas of one pipeline on the threads executor (in one process) or the processes executor (one
// MPI rank per worker and replica: `mpirun -n 4 node lib-replicas-script.js processes SCHEDULE OUT`):
// 3 optimizer steps and an evaluation on fixed mini-batches, from the same initial weights (the MLP,
// or with a fifth argument "cnn-bn" a CNN with BatchNorm; "inline" runs the replicas in one thread;
// schedule "interleaved" runs 2 chunks per worker). Rank 0
// (or the one process) writes the losses, the evaluation, the weights and the optimizer state as the
// bits of their float32 values, so test/threads-replicas.test.ts can compare them exactly.
import { writeFileSync } from "node:fs";
import { splitBatch } from "../src/data/microbatch.js";
import { createModel, type ModelSpec } from "../src/nn/models/index.js";
import { uniformBalance } from "../src/pipeline/partition.js";
import type { Executor } from "../src/pipeline/runtime/executor.js";
import type { PipelineSetup } from "../src/pipeline/runtime/setup.js";
import { finalizeMpi } from "../src/api/spmd.js";
import { generateSchedule } from "../src/pipeline/schedule/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

const [executor, schedule, out, replicasArg, modelArg] = process.argv.slice(2) as ["threads" | "processes" | "inline", string, string, string?, string?];
export const SPEC: ModelSpec = { name: "mlp", input: 12, hidden: [16, 16, 16], classes: 5 };
export const CNN_BN = { name: "cnn", image: 8, inChannels: 1, channels: [4, 4], hidden: 8, classes: 3, norm: "batch" } as ModelSpec;
export const SEED = 11;
export const OPT = { name: "sgd", lr: 0.1, momentum: 0.9, weightDecay: 1e-3 } as const;
export const N = 8, STEPS = 3;
const M = 4;

/** Fixed mini-batches of N examples (of `spec`'s input shape and classes). */
export function batches(spec: ModelSpec = SPEC): { x: Tensor; y: Int32Array }[] {
  const rng = new Rng(7);
  const shape = spec.name === "mlp" ? [N, 12] : [N, 1, 8, 8], classes = spec.name === "mlp" ? 5 : 3;
  return Array.from({ length: STEPS + 1 }, () => ({ x: Tensor.randn(shape, rng), y: Int32Array.from({ length: N }, () => rng.int(classes)) }));
}

const bits = (a: Float32Array): number[] => [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
const f32 = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0];

async function main(): Promise<void> {
  const replicas = Number(replicasArg ?? 2);
  const spec = modelArg === "cnn-bn" ? CNN_BN : SPEC;
  const model = createModel(spec, SEED);
  const chunks = schedule === "interleaved" ? 2 : 1;
  const setup: PipelineSetup = { model: spec, seed: SEED, schedule: generateSchedule(schedule, { stages: 2, microbatches: M, chunks }),
    balance: uniformBalance(model.units.length, 2 * chunks), recompute: "never", optimizer: OPT };
  let ex: Executor;
  if (executor === "processes") ex = await (await import("../src/pipeline/runtime/processes.js")).ProcessesExecutor.create(setup, { state: model.stateDict() }, replicas);
  else if (executor === "inline") ex = await (await import("../src/pipeline/runtime/inline.js")).InlineExecutor.create(model, setup, replicas);
  else ex = await (await import("../src/pipeline/runtime/threads.js")).ThreadsExecutor.create(setup, model.stateDict(), replicas);
  const data = batches(spec);
  const losses: number[] = [];
  for (const b of data.slice(0, STEPS)) {
    const parts = splitBatch(b, M);
    losses.push(f32((await ex.step({ inputs: parts.map((p) => p.x), labels: parts.map((p) => p.y), scale: 1 / N })).loss));
  }
  const evalParts = splitBatch(data[STEPS], M);
  const ev = await ex.evaluate({ inputs: evalParts.map((p) => p.x), labels: evalParts.map((p) => p.y) }, 1 / N);
  const state = await ex.stateDict();
  const opt = await ex.optimizerState([...state.keys()]);
  await ex.close();
  if (executor === "processes") await finalizeMpi();
  const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? 0);
  if (rank !== 0) return;
  writeFileSync(out, JSON.stringify({
    losses, eval: [f32(ev.loss), ev.correct, ev.count],
    weights: [...state].map(([k, t]) => [k, bits(t.data)]),
    optimizer: JSON.stringify({ kind: opt.kind, groups: opt.groups, steps: Object.entries(opt.steps).sort(),
      tensors: [...opt.tensors].sort(([a], [b]) => a.localeCompare(b)).map(([k, t]) => [k, bits(t.data)]) }),
  }));
}

// `node --test dist/test/` also loads this fixture (without arguments): then it does nothing.
if (executor !== undefined) await main();
