// Example (b): a user-defined transformer language model (byte level) trained on a text file with
// the 1F1B schedule on worker threads. The embedding is the user's own Module (token + learned
// position embedding written with the ops); blocks, norm and head are library layers; the loss is a
// user function (token cross-entropy, the micro-batch mean) that every worker imports.
//
//   node examples/char-transformer.mjs [--text FILE] [--steps 40] [--layers 2] [--width 64] [--context 32]
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";
import {
  Embedding, LayerNorm, Linear, Module, Rng, Tensor, TextBatcher, TransformerBlock, createPipeline, crossEntropyLoss,
  decodeBytes, loadTextCorpus, ops,
} from "pipewright";

const VOCAB = 256;

/** Token ids [B, T] (as floats) -> token embedding + position embedding, [B, T, D]. */
class Embed extends Module {
  constructor(context, dim, rng) {
    super();
    this.tok = this.registerModule("tok", new Embedding(VOCAB, dim, rng, 0.02));
    this.pos = this.registerModule("pos", new Embedding(context, dim, rng, 0.02));
  }
  forward(ids) {
    const t = ids.shape[1];
    const positions = Tensor.from(Array.from({ length: t }, (_, i) => i), [t]);
    return ops.add(this.tok.forward(ids), this.pos.forward(positions));
  }
}

/** The model as units: embedding, `layers` causal blocks, final norm, head -> [B, T, 256]. */
export function build({ layers = 2, width = 64, heads = 4, context = 32, seed = 0 } = {}) {
  const rng = new Rng(seed);
  const units = [new Embed(context, width, rng)];
  for (let i = 0; i < layers; i++) units.push(new TransformerBlock(width, heads, rng, { causal: true }));
  units.push(new LayerNorm(width), new Linear(width, VOCAB, rng));
  return units;
}

/** Next-byte cross-entropy: logits [B, T, 256] against B*T byte ids, averaged (PyTorch's default). */
export function tokenLoss(logits, targets) {
  return crossEntropyLoss(logits, targets, "mean");
}

async function main() {
  const { values } = parseArgs({ options: {
    text: { type: "string", default: fileURLToPath(new URL("./data/sample.txt", import.meta.url)) },
    steps: { type: "string", default: "40" }, layers: { type: "string", default: "2" }, width: { type: "string", default: "64" },
    context: { type: "string", default: "32" }, batch: { type: "string", default: "16" }, executor: { type: "string", default: "threads" },
  } });
  const args = { layers: Number(values.layers), width: Number(values.width), heads: 4, context: Number(values.context), seed: 0 };
  const corpus = loadTextCorpus(values.text);
  const batcher = new TextBatcher(corpus, Number(values.batch), args.context, 1);
  const pipe = await createPipeline({
    model: { module: import.meta.url, export: "build", args }, loss: { module: import.meta.url, export: "tokenLoss" },
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
}

// Not a top-level await: the workers (and createPipeline, on this thread) import this very file.
if (isMainThread) main().catch((e) => { console.error(e); process.exitCode = 1; });
