// What a worker's list reports from its last stage (each micro-batch's metrics; in prediction its
// outputs), and how every executor sums it: a step's micro-batch shares in replica order, a
// forward-only list's shares put back under their global micro-batch ids (replica r runs r, r+R,
// ... under local ids 0, 1, ...) and summed in that order. The same order gives the same bits.
import { Tensor } from "../../tensor/tensor.js";
import type { MicrobatchMetrics, Target } from "../stage.js";
import type { EvalBatches, SplitBatch, StepResult } from "./executor.js";
import type { Schedule } from "../schedule/action.js";
import type { PipelineSetup } from "./setup.js";
import type { RankTimings } from "./action-records.js";

/** One micro-batch's output as plain arrays (it crosses threads and ranks this way). */
export interface PlainOutput { mb: number; data: Float32Array; shape: number[] }

/** Where a worker's interpreter reports its list's metrics and outputs (onMetrics, onOutput). */
export class ListResults {
  metrics: [number, MicrobatchMetrics][] = [];
  outputs: PlainOutput[] = [];
  readonly onMetrics = (mb: number, m: MicrobatchMetrics): void => { this.metrics.push([mb, m]); };
  readonly onOutput = (mb: number, t: Tensor): void => { this.outputs.push({ mb, data: t.data.slice(), shape: [...t.shape] }); };

  /** What was reported since the last call. */
  take(): Pick<ListResults, "metrics" | "outputs"> {
    const { metrics, outputs } = this;
    [this.metrics, this.outputs] = [[], []];
    return { metrics, outputs };
  }
}

/** A share of a forward-only list: the global ids of its micro-batches and what it reported under their local ids. */
export interface ForwardShare { ids: readonly number[]; metrics: readonly [number, MicrobatchMetrics][]; outputs: readonly PlainOutput[] }

/** `a` plus `m`, in place (loss, correct, count). */
export function addMetrics<M extends MicrobatchMetrics>(a: M, m: MicrobatchMetrics): M {
  a.loss += m.loss; a.correct += m.correct; a.count += m.count;
  return a;
}

/** A step's result from the workers' metrics (lists in replica order: each micro-batch's shares summed so) and replica 0's busy seconds and peaks. */
export function sumMetrics(microbatches: number, lists: Iterable<Iterable<readonly [number, MicrobatchMetrics]>>, replicas: number,
  busy: number[], peaks: Iterable<[number, number]>, stages: number): StepResult {
  const shares = Array.from({ length: microbatches }, (): MicrobatchMetrics[] => []);
  for (const list of lists) for (const [mb, m] of list) shares[mb]?.push(m);
  const per = shares.map((p, j) => {
    if (p.length !== replicas) throw new Error(`micro-batch ${j} produced ${p.length} loss(es) for ${replicas} replica(s)`);
    return p.slice(1).reduce(addMetrics, { ...p[0] });
  });
  const { loss, correct, count } = per.reduce(addMetrics, { loss: 0, correct: 0, count: 0 });
  const peakActivations = new Array<number>(stages).fill(0);
  for (const [s, n] of peaks) peakActivations[s] = n;
  return { loss, correct, count, perMicrobatch: per, busy, peakActivations };
}

/** The evaluation metrics of `n` micro-batches from their shares, summed in micro-batch order. */
export function evalMetrics(n: number, shares: Iterable<ForwardShare>): MicrobatchMetrics {
  const per = new Array<MicrobatchMetrics | undefined>(n).fill(undefined);
  for (const s of shares) for (const [i, m] of s.metrics) per[s.ids[i]] = m;
  return per.reduce((out: MicrobatchMetrics, m, j) => {
    if (!m) throw new Error(`evaluation micro-batch ${j} produced no metrics`);
    return addMetrics(out, m);
  }, { loss: 0, correct: 0, count: 0 });
}

/** The outputs of `n` micro-batches from their shares, in micro-batch order. */
export function predictions(n: number, shares: Iterable<ForwardShare>): Tensor[] {
  const out: Tensor[] = [];
  for (const s of shares) for (const o of s.outputs) out[s.ids[o.mb]] = new Tensor(o.data, o.shape);
  return Array.from({ length: n }, (_, j) => out[j]);
}

/**
 * What every executor does alike: a step is a run of one mini-batch; evaluation and prediction put
 * its forward-only lists' shares back in micro-batch order; the timing records of the last step.
 */
export abstract class ListExecutor {
  protected abstract readonly setup: PipelineSetup;
  /** The records of the last step (instrumentation.recordActions only). */
  protected last: RankTimings[] | null = null;
  abstract run(batches: readonly SplitBatch[], lrFactors?: readonly number[]): Promise<StepResult>;
  /** Every share of a forward-only list over `inputs` (with `labels`: evaluation; without: prediction). */
  protected abstract forwardOnly(inputs: readonly Tensor[], labels: readonly Target[] | null, scale: number, mode: "eval" | "predict"): Promise<ForwardShare[]>;

  step(batch: SplitBatch, lrFactor = 1): Promise<StepResult> { return this.run([batch], [lrFactor]); }

  async evaluate(batches: EvalBatches, scale = 1): Promise<MicrobatchMetrics> {
    return evalMetrics(batches.inputs.length, await this.forwardOnly(batches.inputs, batches.labels, scale, "eval"));
  }

  async predict(inputs: readonly Tensor[]): Promise<Tensor[]> { return predictions(inputs.length, await this.forwardOnly(inputs, null, 1, "predict")); }

  stepTimings(): RankTimings[] | null { return this.last; }
  timingSchedule(): Schedule { return this.setup.schedule; }
}
