// `pipewright eval`: evaluates a saved checkpoint on the test set (or the text's validation split)
// and can export a few inputs with their logits, so that scripts/check_checkpoint_torch.py can check
// that PyTorch's forward on the same weights gives the same logits.
import { noGrad } from "../autograd/engine.js";
import { loadCheckpoint } from "../checkpoint/checkpoint.js";
import { writeSafetensors } from "../checkpoint/safetensors.js";
import { createModel, resolveSpec, type ModelSpec } from "../nn/models/index.js";
import { buildTask } from "../train/task.js";
import { command, type CommandSpec, UsageError } from "./args.js";
import { emit } from "./output.js";

const evalCommand = {
  name: "eval",
  summary: "Evaluate a checkpoint on the test set; optionally export inputs and logits for the PyTorch check.",
  flags: {
    checkpoint: { type: "string", meta: "FILE", help: "checkpoint written by `pipewright train --save`" },
    data: { type: "string", meta: "DIR", help: "Fashion-MNIST directory (default: the Debian package's)" },
    text: { type: "string", meta: "FILE", help: "text corpus for gpt checkpoints (default: the committed fixture)" },
    limit: { type: "int", min: 1, meta: "N", help: "use only the first N examples of each split" },
    "export-logits": { type: "string", meta: "FILE", help: "write tensors `input` and `logits` of the first --samples test inputs (.safetensors)" },
    samples: { type: "int", min: 1, default: 16, meta: "N", help: "how many inputs --export-logits writes" },
    json: { type: "bool", help: "print the result as one JSON object" },
  },
  examples: [
    "pipewright eval --checkpoint cnn.safetensors",
    "pipewright eval --checkpoint cnn.safetensors --export-logits io.safetensors && /usr/bin/python3 scripts/check_checkpoint_torch.py cnn.safetensors --inputs io.safetensors --logits io.safetensors",
  ],
} as const satisfies CommandSpec;

export const runEval = command(evalCommand, (f) => {
  const path = f.checkpoint;
  if (!path) throw new UsageError("pipewright eval: --checkpoint FILE is required");
  const ck = loadCheckpoint(path);
  if (!ck.modelSpec) throw new Error(`${path}: the checkpoint has no "model_spec" metadata; it was not written by pipewright train`);
  const spec = resolveSpec(ck.modelSpec as unknown as ModelSpec);
  const model = createModel(spec, 0);
  try {
    model.loadStateDict(ck.model);
  } catch (e) {
    throw new Error(`${path}: the tensors do not fit the checkpoint's own model_spec ${JSON.stringify(ck.modelSpec)} (${(e as Error).message})`);
  }
  model.eval();
  const task = (batch: number): ReturnType<typeof buildTask> => buildTask({ spec, batch, seed: 0, data: f.data, limit: f.limit, text: f.text });
  const result = task(1).evaluate(model);

  const exportPath = f["export-logits"];
  let exported = 0;
  if (exportPath) {
    const n = f.samples;
    // The first training batch of n inputs (any inputs serve: the check compares two forwards).
    const probe = task(n).batches(0, 0)[Symbol.iterator]().next().value;
    if (!probe) throw new Error("eval: the data set is empty");
    const logits = noGrad(() => model.forward(probe.x));
    writeSafetensors(exportPath, [["input", probe.x], ["logits", logits]]);
    exported = probe.x.shape[0];
  }
  const out = { checkpoint: path, model: spec.name, step: ck.step, epoch: ck.epoch, test_loss: result.loss,
    test_acc: result.acc, test_ppl: result.ppl, exported: exportPath ?? null };
  const metric = result.acc !== null ? `accuracy ${(result.acc * 100).toFixed(2)}%` : `perplexity ${result.ppl?.toFixed(3)}`;
  emit(f.json, out, `${path}: ${spec.name} after epoch ${ck.epoch} (step ${ck.step}): test loss ${result.loss.toFixed(4)}, ${metric}` +
    (exportPath ? `\nwrote ${exported} inputs and their logits to ${exportPath}` : ""));
  return 0;
});
