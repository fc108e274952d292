// Example (c): PipeMare (asynchronous pipeline: no flush, T1 learning-rate rescheduling and T2
// discrepancy correction) on a user-defined classifier over the user's own arrays (Gaussian
// blobs), 4 stages on worker threads. Asynchronous schedules run windows of `window` optimizer
// steps without flush: pipe.run(batches) takes that many mini-batches. The model is in
// pipemare-model.mjs, which the workers import.
//
//   node examples/pipemare.mjs [--epochs 8] [--executor threads|inline]
import { parseArgs } from "node:util";
import { Rng, arrayBatches, arrayDataset, createPipeline } from "pipewright";
import { CLASSES, FEATURES } from "./pipemare-model.mjs";

/** Class c's examples scatter around their own random centre. */
function blobs(n, seed) {
  const rng = new Rng(seed);
  const centres = Array.from({ length: CLASSES }, () => Array.from({ length: FEATURES }, () => 2 * rng.normal()));
  const x = new Float32Array(n * FEATURES), y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % CLASSES;
    for (let k = 0; k < FEATURES; k++) x[i * FEATURES + k] = centres[y[i]][k] + rng.normal();
  }
  return arrayDataset(x, y, n, [FEATURES]);
}

const { values } = parseArgs({ options: { epochs: { type: "string", default: "8" }, executor: { type: "string", default: "threads" } } });
const data = blobs(512, 3);
const window = 8, batch = 64;
const pipe = await createPipeline({
  model: { module: new URL("./pipemare-model.mjs", import.meta.url), export: "build", args: { hidden: 32, seed: 0 } }, loss: "cross-entropy",
  schedule: "async", async: { method: "pipemare" }, window, stages: 4, microbatches: 4, executor: values.executor,
  optimizer: { name: "sgd", lr: 0.02, momentum: 0.9 },
});
const epochLoss = [];
try {
  for (let epoch = 0; epoch < Number(values.epochs); epoch++) {
    const batches = [...arrayBatches(data, { batchSize: batch, epoch, seed: 5, dropLast: true })].slice(0, window);
    const losses = await pipe.run(batches);
    epochLoss.push(losses.reduce((a, b) => a + b, 0) / losses.length);
    console.log(JSON.stringify({ epoch: epoch + 1, mean_loss: epochLoss.at(-1) }));
  }
  const all = [...arrayBatches(data, { batchSize: data.n, shuffle: false })][0];
  const logits = await pipe.eval(all.x);
  let correct = 0;
  for (let i = 0; i < data.n; i++) {
    const row = logits.data.subarray(i * CLASSES, (i + 1) * CLASSES);
    if (row.indexOf(Math.max(...row)) === all.y[i]) correct++;
  }
  console.log(JSON.stringify({ first_loss: epochLoss[0], last_loss: epochLoss.at(-1), losses: epochLoss, accuracy: correct / data.n }));
} finally {
  await pipe.close();
}
