// Stage 0's input hook: inputs marked `prepare` (SplitBatch.prepare) go through the model's
// prepareInput on the worker that feeds stage 0, on that replica's rows, before the stage sees them;
// the results go back with the step's. The elastic trainer fills its activation cache this way: each
// replica runs the frozen prefix on its own rows, in parallel, as it trains on them. Forward-only
// lists (evaluation, prediction) always take model inputs, so stage 0 runs prepareInput on them too.
import { Tensor } from "../../tensor/tensor.js";
import type { PreparedInput } from "./executor.js";
import type { Payload } from "./interpreter.js";
import type { PipelineModel } from "./model-source.js";

export class InputHook {
  private prepared: PreparedInput[] = [];
  private seconds = 0;

  constructor(private readonly model: PipelineModel, private readonly worker: number) {}

  /** `p`, or for an input marked `prepare`, the model's prepareInput of it (kept for take()). */
  apply(p: Payload): Payload {
    if (p.kind !== "tensor" || p.prepare === undefined) return p;
    if (!this.model.prepareInput) throw new Error(`worker ${this.worker}: a step asks stage 0 to prepare its inputs, but the model has no prepareInput`);
    const t0 = performance.now();
    const y = this.model.prepareInput(new Tensor(p.data, p.shape), true);
    this.seconds += (performance.now() - t0) / 1000;
    this.prepared.push({ mb: p.prepare, data: y.data.slice(), shape: [...y.shape] });
    return { kind: "tensor", data: y.data, shape: [...y.shape] };
  }

  /** A forward-only list's input (evaluation, prediction): the model's prepareInput of it in eval mode, not kept. */
  forward(p: Payload): Payload {
    if (p.kind !== "tensor" || !this.model.prepareInput) return p;
    const y = this.model.prepareInput(new Tensor(p.data, p.shape), false);
    return { kind: "tensor", data: y.data, shape: [...y.shape] };
  }

  /** Loads new weights into what the hook runs besides the stages (the stages load theirs; its modules may be among them). */
  load(state: ReadonlyMap<string, Tensor>): void {
    if (this.model.prepareInput) this.model.loadStateDict(state, false);
  }

  /** The inputs prepared and the seconds spent since the last call (counted as stage 0's forward time). */
  take(): { prepared: PreparedInput[]; seconds: number } {
    const out = { prepared: this.prepared, seconds: this.seconds };
    [this.prepared, this.seconds] = [[], 0];
    return out;
  }
}

/**
 * Every replica's prepared inputs of a step, given in replica order, sorted by micro-batch: the sort
 * is stable, so each micro-batch's rows stay in replica order (the order the cache's row groups take).
 */
export function preparedInOrder(parts: readonly PreparedInput[]): PreparedInput[] {
  return [...parts].sort((a, b) => a.mb - b.mb);
}
