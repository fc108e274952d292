// The data side of a training run: image classification on Fashion-MNIST (mlp, cnn, vit) or
// next-byte prediction on a text corpus (gpt). Both give the batches of any (epoch, batch index)
// without hidden RNG state, which is what makes a resumed run continue exactly.
import { noGrad } from "../autograd/engine.js";
import { loadFashionMnist } from "../data/fashion-mnist.js";
import { DataLoader, type TensorDataset } from "../data/loader.js";
import { BYTE_VOCAB_SIZE, loadTextCorpus, textCorpusPath, TextBatcher } from "../data/text.js";
import { countCorrectLater, crossEntropyLoss } from "../nn/loss.js";
import type { Module } from "../nn/module.js";
import { resolveSpec, type ModelSpec } from "../nn/models/spec.js";
import type { Tensor } from "../tensor/tensor.js";

/** A training batch: its place in the epoch and, for a data set of examples, their indices (AutoCache's keys). */
export interface TrainBatch { x: Tensor; y: Int32Array; index: number; indices?: Int32Array }

export interface EvalResult {
  /** Mean loss per prediction. */
  loss: number;
  /** Classification accuracy in [0, 1]; null for language models. */
  acc: number | null;
  /** exp(loss) for language models; null for classifiers. */
  ppl: number | null;
}

/** Evaluation batches: inputs[j] with class ids labels[j] (each a whole chunk, not split further). */
export interface EvalSet { inputs: Tensor[]; labels: Int32Array[] }

/** Summed cross-entropy, correct predictions and targets over an evaluation. */
export interface EvalSums { loss: number; correct: number; count: number }

export interface Task {
  kind: "image" | "text";
  /** Examples (images or context windows) per epoch. */
  samplesPerEpoch: number;
  stepsPerEpoch: number;
  /** The batches of `epoch` (0-based) from batch `start` on. */
  batches(epoch: number, start: number): Iterable<TrainBatch>;
  /** Loss (and accuracy) on the test set / validation split, in eval mode, without gradients. */
  evaluate(model: Module): EvalResult;
  /** The same evaluation's batches (test set / validation split), to run through a pipeline. */
  evalBatches(): EvalSet;
  /** The evaluation result from the summed loss, correct predictions and targets of evalBatches(). */
  evalResult(sums: EvalSums): EvalResult;
  /** One line for the log: what data this is. */
  describe: string;
}

export interface TaskOptions {
  spec: ModelSpec;
  batch: number;
  seed: number;
  data?: string;
  limit?: number;
  text?: string;
  stepsPerEpoch?: number;
  /**
   * false: the examples' inputs are not loaded (a pipeline rank without the first stage needs only
   * the labels); image batches then carry [b, 0] placeholder inputs. The text corpus is always read.
   */
  inputs?: boolean;
}

export function buildTask(o: TaskOptions): Task {
  const misfit = taskMisfit(o.spec);
  if (misfit) throw new Error(misfit);
  if (resolveSpec(o.spec).name === "gpt") return textTask(o);
  const d = loadImageDatasets(o.data, o.limit, o.inputs !== false);
  return imageTaskOf(d, o.batch, o.seed, `Fashion-MNIST from ${d.dir}`);
}

/** Fashion-MNIST's shape and the byte corpus's vocabulary: what a sized model must keep to train here. */
const IMAGE_TASK = { image: 28, inChannels: 1, input: 28 * 28, classes: 10 } as const;

/**
 * Why `spec` cannot train on its task (Fashion-MNIST for mlp/cnn/vit, the byte corpus for gpt), or
 * null: a sized model may change its depth and widths, not the data's shape.
 */
export function taskMisfit(spec: ModelSpec): string | null {
  const s = resolveSpec(spec) as ReturnType<typeof resolveSpec> & Record<string, unknown>;
  if (s.name === "gpt") {
    return s.vocab < BYTE_VOCAB_SIZE
      ? `model 'gpt': vocab ${s.vocab} is too small for the byte-level text corpus; it must be at least ${BYTE_VOCAB_SIZE}` : null;
  }
  const fields = s.name === "mlp" ? (["input", "classes"] as const) : (["image", "inChannels", "classes"] as const);
  for (const k of fields) {
    if (s[k] !== IMAGE_TASK[k]) {
      return `model '${s.name}': ${k} ${String(s[k])} does not fit Fashion-MNIST (28x28 grey images, 10 classes); ${k} must be ${IMAGE_TASK[k]}`;
    }
  }
  return null;
}

const EVAL_CHUNK = 500;

/** Fashion-MNIST's train and test splits as datasets (the first `limit` examples of each when given). */
export function loadImageDatasets(data?: string, limit?: number, images = true): { train: TensorDataset; test: TensorDataset; dir: string } {
  const toDataset = (d: ReturnType<typeof loadFashionMnist>): TensorDataset =>
    ({ inputs: d.images, labels: d.labels, n: d.n, sampleShape: d.sampleShape });
  const train = loadFashionMnist({ dir: data, split: "train", limit, images });
  const test = loadFashionMnist({ dir: data, split: "test", limit, images });
  return { train: toDataset(train), test: toDataset(test), dir: train.dir };
}

/** The image task of these data sets (shuffled per epoch from `seed`); `from` names them in describe. */
export function imageTaskOf(ds: { train: TensorDataset; test: TensorDataset }, batch: number, seed: number, from = "given data sets"): Task {
  const loader = new DataLoader(ds.train, { batchSize: batch, shuffle: true, seed });
  return {
    kind: "image",
    samplesPerEpoch: ds.train.n,
    stepsPerEpoch: loader.length,
    batches: (epoch, start) => loader.epoch(epoch, start),
    ...evaluation(() => evalChunks(ds.test), (s) => ({ loss: s.loss / s.count, acc: s.correct / s.count, ppl: null })),
    describe: `${from}: ${ds.train.n} training and ${ds.test.n} test images`,
  };
}

/**
 * A task's evaluation: its batches, made once (every evaluation reads the same ones; nothing writes
 * into them), run on a model or summed elsewhere (a pipeline's stages) and turned into the result.
 */
function evaluation(make: () => EvalSet, evalResult: (s: EvalSums) => EvalResult): Pick<Task, "evaluate" | "evalBatches" | "evalResult"> {
  let set: EvalSet | null = null;
  const evalBatches = (): EvalSet => (set ??= make());
  return { evalBatches, evalResult, evaluate: (model) => evalResult(sumOnModel(model, evalBatches())) };
}

/** Runs `fn` with `model` in eval mode and without gradients, then restores the model's mode. */
function evaluating<T>(model: Module, fn: () => T): T {
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(fn);
  } finally {
    model.train(wasTraining);
  }
}

/** Summed cross-entropy, correct predictions and targets of `model` over the batches, in order. */
function sumOnModel(model: Module, set: EvalSet): EvalSums {
  const s: EvalSums = { loss: 0, correct: 0, count: 0 };
  evaluating(model, () => set.inputs.forEach((x, j) => {
    const logits = model.forward(x), y = set.labels[j];
    // Counted before the loss is read, so that a device backend reads both back with one wait.
    const correct = countCorrectLater(logits, y);
    s.loss += crossEntropyLoss(logits, y, "sum").item();
    s.correct += correct();
    s.count += y.length;
  }));
  return s;
}

/** A test set in evaluation chunks of EVAL_CHUNK examples, in stored order. */
function evalChunks(test: TensorDataset): EvalSet {
  const chunks = [...new DataLoader(test, { batchSize: EVAL_CHUNK, shuffle: false }).epoch(0)];
  return { inputs: chunks.map((c) => c.x), labels: chunks.map((c) => c.y) };
}

/** Validation batches drawn for each evaluation of the language model (fixed, so evals compare). */
const TEXT_EVAL_BATCHES = 8;
const MIN_TEXT_STEPS_PER_EPOCH = 50;

function textTask(o: TaskOptions): Task {
  const spec = resolveSpec(o.spec);
  if (spec.name !== "gpt") throw new Error(`text training needs the gpt model, got '${spec.name}'`);
  const path = o.text ?? textCorpusPath();
  const corpus = loadTextCorpus(path);
  const batcher = new TextBatcher(corpus, o.batch, spec.context, o.seed);
  const onePass = Math.ceil(corpus.train.length / (o.batch * spec.context));
  const stepsPerEpoch = o.stepsPerEpoch
    ?? (o.limit !== undefined ? Math.ceil(o.limit / o.batch) : Math.max(MIN_TEXT_STEPS_PER_EPOCH, onePass));
  return {
    kind: "text",
    samplesPerEpoch: stepsPerEpoch * o.batch,
    stepsPerEpoch,
    *batches(epoch, start) {
      for (let i = start; i < stepsPerEpoch; i++) {
        const { x, y } = batcher.batchAt("train", epoch * stepsPerEpoch + i);
        yield { x, y, index: i };
      }
    },
    ...evaluation(() => {
      const b = Array.from({ length: TEXT_EVAL_BATCHES }, (_, i) => batcher.batchAt("val", i));
      return { inputs: b.map((x) => x.x), labels: b.map((x) => x.y) };
    }, (s) => ({ loss: s.loss / s.count, acc: null, ppl: Math.exp(s.loss / s.count) })),
    describe: `text corpus ${path}: ${corpus.train.length} training and ${corpus.val.length} validation bytes, ` +
      `context ${spec.context}, ${stepsPerEpoch} steps per epoch`,
  };
}
