// Where weight gradients are computed: with each micro-batch's backward (the generators' default),
// or once per optimizer step. The second splits every backward into B (input gradient, on the
// critical path) and W (weight gradient), and moves the W's of the B's since a stage's previous
// STEP to just before its next one, grouped by chunk; the interpreter runs each such run of W's as
// one pass, so a layer's weight gradient is one product over the whole mini-batch instead of M thin
// ones accumulated (thin products stream the weight gradient through memory M times). A weight
// gradient reads only saved activations and output gradients, never the weights, so this holds for
// asynchronous schedules too (whatever weight version a micro-batch's F and B used). The cost: a
// stage holds each micro-batch's layer inputs and output gradients until the STEP, so 1F1B's
// activation memory grows to GPipe's.
import { action, type Action, actionParts, type Schedule } from "./action.js";

export const WEIGHT_GRAD_MODES = ["microbatch", "step"] as const;
export type WeightGradMode = (typeof WEIGHT_GRAD_MODES)[number];

export function isWeightGradMode(s: string): s is WeightGradMode {
  return (WEIGHT_GRAD_MODES as readonly string[]).includes(s);
}

/** The schedule with every stage's W's moved (or added) right before the STEP that consumes them. */
export function weightGradsAtStep(s: Schedule): Schedule {
  const workers = s.workers.map((list) => {
    const out: Action[] = [];
    // Per stage, the (chunk, micro-batch) of each B since its last STEP, in order.
    const pending = new Map<number, Action[]>();
    for (const a of list) {
      if (a.kind === "W") continue;
      if (a.kind === "STEP") {
        const bs = pending.get(a.stage) ?? [];
        const chunks = [...new Set(bs.map((b) => b.chunk))];
        for (const c of chunks) for (const b of bs) if (b.chunk === c) out.push(action(b.stage, "W", b.microbatch, c));
        pending.delete(a.stage);
      } else {
        for (const b of actionParts(a)) if (b.kind === "B") pending.set(b.stage, [...(pending.get(b.stage) ?? []), b]);
      }
      out.push(a);
    }
    if ([...pending.values()].some((bs) => bs.length > 0)) throw new Error(`schedule '${s.name}' has backward passes after its last STEP`);
    return out;
  });
  return { ...s, splitBackward: true, workers };
}
