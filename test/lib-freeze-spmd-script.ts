// A user's SPMD script for test/freeze-processes.test.ts: a PipeTransformer pipe through
// createPipeline's `freeze` option, run by every MPI rank with the same arguments (`mpirun -n 2 node
// lib-freeze-spmd-script.js processes CKPT`) or by one process on threads. Two epochs of two steps
// with a freeze check after each (alpha 1/2 on schedule: a transition 2x1 -> 1x2 after epoch 1);
// each rank writes CKPT.rank<R>.json (losses, frozen layers, eval output) and saves a checkpoint.
import { writeFileSync } from "node:fs";
import { createPipeline, Rng, Tensor, type ModelSpec } from "../src/index.js";

const [executor, ckpt] = process.argv.slice(2) as ["threads" | "processes", string];
const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? 0);
const SPEC: ModelSpec = { name: "vit", image: 28, patch: 7, dim: 16, depth: 2, heads: 2, classes: 10 };
const N = 16;

async function main(): Promise<void> {
  const rng = new Rng(11);
  const data = Array.from({ length: 4 }, () => ({ x: Tensor.randn([N, 1, 28, 28], rng, 1), y: Int32Array.from({ length: N }, () => rng.int(10)) }));
  const pipe = await createPipeline({
    model: { builtin: SPEC, seed: 5 }, stages: 2, optimizer: { name: "sgd", lr: 0.05, momentum: 0.9 }, executor,
    freeze: { policy: { alpha: "1/2", criterion: "schedule" }, batch: N, samples: 64 },
  });
  const losses: number[] = [], frozen: (number | null)[] = [];
  for (const part of [data.slice(0, 2), data.slice(2)]) {
    for (const b of part) losses.push(await pipe.step(b.x, b.y));
    frozen.push(await pipe.endEpoch());
  }
  const out = await pipe.eval(data[0].x);
  await pipe.save(ckpt);
  // A file per rank: mpirun forwards the ranks' stdout in chunks, so two long lines can interleave.
  writeFileSync(`${ckpt}.rank${rank}.json`, JSON.stringify({ rank, losses, frozen, eval: [...out.data] }));
  await pipe.close();
}

// `node --test dist/test/` also loads this fixture (without arguments): then it does nothing.
if (executor !== undefined) await main();
