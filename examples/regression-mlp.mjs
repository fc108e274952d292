// Example (a): a user-defined regression MLP trained with MSE on the user's own arrays, GPipe on
// worker threads. The model is in regression-model.mjs, which the workers import; this script runs
// on the main thread only, top to bottom.
// With --executor processes it runs SPMD on 2 MPI ranks (one per stage): every rank runs this script
// with the same data and calls; rank 0 alone prints and writes files.
//
//   node examples/regression-mlp.mjs [--executor threads|inline] [--steps 60] [--save model.safetensors]
//   pipewright launch -n 2 -- node examples/regression-mlp.mjs --executor processes   (or: mpirun -n 2 node ...)
//
// Prints one JSON line per 10 steps and a final line with the losses and a SHA-256 of the trained
// weights (threads and inline give the same bits). --save also writes <file>.samples.json: inputs
// and the model's outputs, which examples/load_in_pytorch.py checks against PyTorch.
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Rng, arrayBatches, arrayDataset, createPipeline, getBackend, isWriterRank } from "pipewright";
import { FEATURES } from "./regression-model.mjs";

/** The user's own data: y = sin(x0) + x1 * x2 - 0.5 * x3 + noise, as plain typed arrays. */
function makeData(n, seed = 1) {
  const rng = new Rng(seed);
  const x = new Float32Array(n * FEATURES), y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < FEATURES; k++) x[i * FEATURES + k] = rng.normal();
    const r = x.subarray(i * FEATURES, (i + 1) * FEATURES);
    y[i] = Math.sin(r[0]) + r[1] * r[2] - 0.5 * r[3] + 0.05 * rng.normal();
  }
  return arrayDataset(x, y, n, [FEATURES], []);
}

const { values } = parseArgs({ options: {
  executor: { type: "string", default: "threads" }, steps: { type: "string", default: "60" },
  batch: { type: "string", default: "64" }, save: { type: "string" },
} });
const steps = Number(values.steps), batch = Number(values.batch);
const data = makeData(1024);
const pipe = await createPipeline({
  model: { module: new URL("./regression-model.mjs", import.meta.url), export: "build", args: { hidden: 64, seed: 0 } },
  loss: "mse", schedule: "gpipe", stages: 2, microbatches: 4, executor: values.executor,
  optimizer: { name: "sgd", lr: 0.05, momentum: 0.9 },
});
const losses = [];
const rank0 = isWriterRank();
try {
  for (let epoch = 0; losses.length < steps; epoch++) {
    for (const b of arrayBatches(data, { batchSize: batch, epoch, seed: 7, dropLast: true })) {
      if (losses.length === steps) break;
      losses.push(await pipe.step(b.x, b.y));
      if (rank0 && losses.length % 10 === 0) console.log(JSON.stringify({ step: losses.length, loss: losses.at(-1) }));
    }
  }
  const state = await pipe.stateDict();
  const hash = createHash("sha256");
  for (const [name, t] of state) hash.update(name).update(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  if (values.save) {
    // Collective on processes (every rank calls save and eval); rank 0 writes.
    await pipe.save(values.save);
    const sample = [...arrayBatches(makeData(16, 99), { batchSize: 16, shuffle: false })][0];
    const out = await pipe.eval(sample.x);
    if (rank0) writeFileSync(`${values.save}.samples.json`, JSON.stringify({ layers: ["linear", "relu", "linear", "relu", "linear"],
      input: { shape: sample.x.shape, data: [...sample.x.data] }, output: { shape: out.shape, data: [...out.data] } }));
  }
  if (rank0) console.log(JSON.stringify({ executor: values.executor, backend: getBackend().name, first_loss: losses[0], last_loss: losses.at(-1), losses, weights_sha256: hash.digest("hex") }));
} finally {
  await pipe.close();
}
