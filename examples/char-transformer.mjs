// Example (b): a user-defined transformer language model (byte level) trained on a text file with
// the 1F1B schedule on worker threads. The embedding is the user's own Module (token + learned
// position embedding written with the ops); blocks, norm and head are library layers; the loss is a
// user function (token cross-entropy, the micro-batch mean) that every worker imports. Model and
// loss are in char-transformer-model.mjs, which the workers import.
//
//   node examples/char-transformer.mjs [--text FILE] [--steps 40] [--layers 2] [--width 64] [--context 32]
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Tensor, TextBatcher, createPipeline, decodeBytes, loadTextCorpus } from "pipewright";
import { VOCAB } from "./char-transformer-model.mjs";

const MODEL = new URL("./char-transformer-model.mjs", import.meta.url);

const { values } = parseArgs({ options: {
  text: { type: "string", default: fileURLToPath(new URL("./data/sample.txt", import.meta.url)) },
  steps: { type: "string", default: "40" }, layers: { type: "string", default: "2" }, width: { type: "string", default: "64" },
  context: { type: "string", default: "32" }, batch: { type: "string", default: "16" }, executor: { type: "string", default: "threads" },
} });
const args = { layers: Number(values.layers), width: Number(values.width), heads: 4, context: Number(values.context), seed: 0 };
const corpus = loadTextCorpus(values.text);
const batcher = new TextBatcher(corpus, Number(values.batch), args.context, 1);
const pipe = await createPipeline({
  model: { module: MODEL, export: "build", args }, loss: { module: MODEL, export: "tokenLoss" },
  schedule: "1f1b", stages: 2, microbatches: 4, executor: values.executor,
  optimizer: { name: "adamw", lr: 3e-3, weightDecay: 0.01 },
});
const losses = [];
try {
  console.error(`${corpus.path}: ${corpus.tokens.length} bytes; ${args.layers} blocks of width ${args.width}; balance ${pipe.balance.join(",")}`);
  for (let step = 0; step < Number(values.steps); step++) {
    const b = batcher.batchAt("train", step);
    losses.push(await pipe.step(b.x, b.y));
    if ((step + 1) % 10 === 0) console.log(JSON.stringify({ step: step + 1, loss: losses.at(-1) }));
  }
  // Greedy continuation of a prompt, through pipe.eval.
  let ids = [...new TextEncoder().encode("The ")];
  for (let i = 0; i < 40; i++) {
    const window = ids.slice(-args.context);
    const logits = await pipe.eval(Tensor.from(window, [1, window.length]));
    const last = logits.data.subarray((window.length - 1) * VOCAB, window.length * VOCAB);
    ids.push(last.indexOf(Math.max(...last)));
  }
  console.error(`sample: ${JSON.stringify(decodeBytes(ids))}`);
  console.log(JSON.stringify({ first_loss: losses[0], last_loss: losses.at(-1), losses }));
} finally {
  await pipe.close();
}
