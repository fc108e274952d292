// The check a stage runs once, on its first loss, before anything trains: does the loss broadcast
// the model's output against the target? A user's `mean(square(sub(out, y)))` with out [b, 1] and
// y [b] computes b*b differences and trains on the wrong loss without any error, so the first call
// is probed: the loss runs once more on stand-ins of output and target that record a graph, and the
// graph is searched for an element-wise op (add, sub, mul, div, maximum, minimum, where) that takes
// one operand from the output alone and the other from the target alone and returns more elements
// than the output's operand has (the output was expanded against the target). Only what the loss
// actually does counts: a loss that reshapes one side first, or that uses differently shaped
// targets without broadcasting them against the output (class ids, a mask), passes.
import { enableGrad } from "../autograd/engine.js";
import { Tensor } from "../tensor/tensor.js";
import { fmt, numel, sameShape } from "../tensor/shape.js";

const BROADCASTING_OPS = new Set(["add", "sub", "mul", "div", "maximum", "minimum", "where"]);
const FROM_OUTPUT = 1;
const FROM_TARGET = 2;

/**
 * Throws when `loss` broadcasts `output` against the float `target` (see above), naming both
 * shapes and the reshape to make; returns quietly otherwise (including when the loss throws or
 * returns no Tensor on the stand-ins: the regular call then reports it in its own words).
 */
export function checkLossBroadcast(name: string, loss: (output: Tensor, target: Tensor) => unknown, output: Tensor, target: Tensor): void {
  const o = new Tensor(output.data, output.shape, true);
  const t = new Tensor(target.data, target.shape, true);
  let result: unknown;
  try {
    result = enableGrad(() => loss(o, t));
  } catch {
    return;
  }
  if (!(result instanceof Tensor)) return;
  const origin = new Map<Tensor, number>([[o, FROM_OUTPUT], [t, FROM_TARGET]]);
  // Where each tensor of the loss's graph comes from (output, target, both or neither), inputs first.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, boolean][] = [[result, false]];
  while (stack.length) {
    const [x, expanded] = stack.pop()!;
    if (expanded) { order.push(x); continue; }
    if (seen.has(x)) continue;
    seen.add(x);
    stack.push([x, true]);
    for (const i of x.gradFn?.inputs ?? []) if (!seen.has(i)) stack.push([i, false]);
  }
  for (const x of order) {
    if (origin.has(x)) continue;
    origin.set(x, (x.gradFn?.inputs ?? []).reduce((bits, i) => bits | (origin.get(i) ?? 0), 0));
  }
  for (const x of order) {
    const fn = x.gradFn;
    if (!fn || !BROADCASTING_OPS.has(fn.name)) continue;
    const fromOut = fn.inputs.find((i) => origin.get(i) === FROM_OUTPUT && x.size > i.size);
    const fromTarget = fn.inputs.find((i) => origin.get(i) === FROM_TARGET);
    if (!fromOut || !fromTarget) continue;
    const fix = numel(output.shape) === numel(target.shape) && !sameShape(output.shape, target.shape)
      ? `reshape the target to ${fmt(output.shape)} (e.g. ops.reshape(target, ${JSON.stringify(output.shape.map((d, i) => (i === 0 ? -1 : d)))}) in the loss, or shape y like that when building the batches) or the output to ${fmt(target.shape)}`
      : `reshape the output or the target so that their shapes match`;
    throw new Error(`loss '${name}': the model's output ${fmt(output.shape)} and the target ${fmt(target.shape)} are broadcast against each other ` +
      `('${fn.name}' of ${fmt(fromOut.shape)} and ${fmt(fromTarget.shape)} gives ${fmt(x.shape)}), so the loss would compare ${x.size} pairs ` +
      `instead of the ${fromOut.size} output values with their own targets and train on the wrong loss; ${fix}`);
  }
}
