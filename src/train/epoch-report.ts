// The bookkeeping the training loops (single-device, pipeline, elastic) do around their steps: step records
// every logEvery steps, the progress bar, the epoch record, line and history entry after evaluation,
// and the run summary. The loops keep only how a step runs, how the model is evaluated and saved.
import { getBackend } from "../backend/index.js";
import { MetricsWriter, roundMetric, type MetricsRecord } from "./metrics.js";
import type { ProgressBar } from "./progress.js";
import type { EvalResult } from "./task.js";

/** Samples/s for a log line: whole numbers, but a large model's fraction of a sample per second stays visible. */
export function rate(x: number): string {
  return x >= 10 ? x.toFixed(0) : x.toPrecision(2);
}

/** One pipeline worker's memory in the summary (bytes, counted from tensors: the same every run). */
export interface WorkerMemorySummary {
  worker: number;
  replica: number;
  tensor: number;
  stages: number[];
  parameter_bytes: number;
  gradient_bytes: number;
  optimizer_bytes: number;
  peak_activation_bytes: number;
}

/** The summary of a training run (single-device or pipeline), as the CLI prints it. */
export interface TrainSummary {
  model: string;
  backend: string;
  parameters: number;
  epochs: number;
  steps: number;
  train_loss: number | null;
  test_loss: number | null;
  test_acc: number | null;
  test_ppl: number | null;
  best_test_acc: number | null;
  /** Training throughput over this invocation (evaluation excluded). */
  samples_per_s: number;
  elapsed_s: number;
  /** Peak resident memory of the whole process (the main thread and every worker thread), MB. */
  peak_rss_mb: number;
  /**
   * Pipeline on worker threads: per worker, the most memory its own thread held (JS heap plus the
   * ArrayBuffers of its tensors), MB; null on one device or the inline executor.
   */
  worker_peak_mb: number[] | null;
  /**
   * Pipeline: per worker (stages x tensor rank x replica, tensor innermost), bytes of its parameters,
   * gradients, optimizer state and peak activations over the run, counted from tensors; null on one device.
   */
  worker_memory: WorkerMemorySummary[] | null;
  resumed_from: { path: string; epoch: number; step: number } | null;
  checkpoint: string | null;
  metrics: string | null;
  /** The per-epoch records (including earlier runs' when resumed). */
  history: MetricsRecord[];
}

export interface EpochReportOptions {
  /** Planned epochs (labels, ETA). */
  epochs: number;
  logEvery: number;
  /** The run's data: samples per epoch; a language-model task's epoch records carry test_ppl. */
  task: { samplesPerEpoch: number; kind: "image" | "text" };
  /** Checkpoint path written after every epoch, if any (named in the epoch line). */
  save?: string;
  /** JSON-lines metrics file, if any: new, or continued after the checkpoint a resumed run starts from. */
  metrics?: string;
  progress?: ProgressBar;
  log(message: string): void;
  /** Seconds spent by earlier runs of a resumed run, their epoch records, and where it resumed. */
  counters: { startEpoch: number; elapsedBefore: number; history: MetricsRecord[]; resumedFrom: TrainSummary["resumed_from"] };
}

export class EpochReport {
  /** Every record written this invocation. */
  readonly records: MetricsRecord[] = [];
  readonly history: MetricsRecord[];
  lastEval: EvalResult | null = null;
  lastTrainLoss: number | null;
  private readonly runStart = performance.now();
  private trainSeconds = 0;
  private trainSamples = 0;
  // The current epoch (0-based) and its running sums.
  private epoch = 0;
  private lossSum = 0;
  private batches = 0;
  private samples = 0;
  private epochStart = 0;
  // Samples since the last step record, for its samples/s.
  private windowStart = 0;
  private windowSamples = 0;

  private readonly metrics: MetricsWriter | null;

  /** Opens the metrics file first: a bad path fails before the caller starts anything it must close. */
  constructor(private readonly o: EpochReportOptions) {
    const { metrics, counters: c } = o;
    this.metrics = metrics ? (c.resumedFrom ? MetricsWriter.resume(metrics, c.resumedFrom) : new MetricsWriter(metrics, false)) : null;
    this.history = c.history;
    this.lastTrainLoss = c.history.length ? c.history[c.history.length - 1].loss : null;
  }

  /** Wall-clock seconds of the whole run, earlier runs of a resumed one included. */
  elapsed(): number { return this.o.counters.elapsedBefore + (performance.now() - this.runStart) / 1000; }

  /** Ends the progress line and closes the metrics file. */
  close(): void {
    this.o.progress?.done();
    this.metrics?.close();
  }

  beginEpoch(epoch: number): void {
    this.epoch = epoch;
    this.lossSum = 0; this.batches = 0; this.samples = 0;
    this.epochStart = this.windowStart = performance.now();
    this.windowSamples = 0;
  }

  /** One optimizer step (global count `step`) of `n` samples: step record, then the bar with this loss. */
  step(step: number, loss: number, n: number, lr: number): void {
    const now = this.count(step, loss, n, lr, true);
    this.drawProgress(loss, now);
  }

  /**
   * One step of several that ran together (an asynchronous window): its record's rate counts from
   * the window's start; endWindow() then starts the next window and draws the bar.
   */
  windowStep(step: number, loss: number, n: number, lr: number): void { this.count(step, loss, n, lr, false); }

  endWindow(): void {
    const now = performance.now();
    this.windowStart = now; this.windowSamples = 0;
    this.drawProgress(this.lossSum / Math.max(1, this.batches), now);
  }

  /** The mean loss of the epoch's steps so far. */
  get epochTrainLoss(): number { return this.lossSum / Math.max(1, this.batches); }

  /**
   * After the epoch's last step: evaluate (may sync weights first), write the epoch record and
   * history entry, call `checkpoint` with the --save path if any, and log the epoch line.
   */
  async endEpoch(step: number, lr: number, evaluate: () => EvalResult | Promise<EvalResult>,
    checkpoint: (path: string) => void | Promise<void>): Promise<void> {
    const epochSeconds = (performance.now() - this.epochStart) / 1000;
    this.trainSeconds += epochSeconds;
    this.trainSamples += this.samples;
    this.o.progress?.done();
    const ev = await evaluate();
    this.lastEval = ev;
    const trainLoss = this.epochTrainLoss;
    this.lastTrainLoss = trainLoss;
    const rec: MetricsRecord = {
      type: "epoch", epoch: this.epoch + 1, step, loss: roundMetric(trainLoss), test_loss: roundMetric(ev.loss),
      test_acc: ev.acc === null ? null : roundMetric(ev.acc), samples_per_s: roundMetric(this.samples / epochSeconds),
      lr, elapsed_s: roundMetric(this.elapsed()),
    };
    if (this.o.task.kind === "text") rec.test_ppl = ev.ppl === null ? null : roundMetric(ev.ppl);
    this.emit(rec);
    this.history.push(rec);
    if (this.o.save) await checkpoint(this.o.save);
    const quality = ev.acc !== null ? `test acc ${(ev.acc * 100).toFixed(2)}%` : `test perplexity ${(ev.ppl ?? NaN).toFixed(3)}`;
    this.o.log(`epoch ${this.epoch + 1}/${this.o.epochs}: train loss ${trainLoss.toFixed(4)}, test loss ${ev.loss.toFixed(4)}, ` +
      `${quality}, ${rate(this.samples / epochSeconds)} samples/s${this.o.save ? `, saved ${this.o.save}` : ""}`);
  }

  /** The run's summary; `lastEval` is the final evaluation (the checkpoint's, when nothing was trained). */
  summary(run: Pick<TrainSummary, "model" | "parameters" | "steps">, lastEval: EvalResult): TrainSummary {
    const accs = this.history.map((h) => h.test_acc).filter((a): a is number => a !== null);
    const { counters, save, metrics } = this.o;
    return {
      model: run.model, backend: getBackend().name, parameters: run.parameters,
      epochs: Math.max(counters.startEpoch, this.o.epochs), steps: run.steps,
      train_loss: this.lastTrainLoss === null ? null : roundMetric(this.lastTrainLoss),
      test_loss: roundMetric(lastEval.loss), test_acc: lastEval.acc === null ? null : roundMetric(lastEval.acc),
      test_ppl: lastEval.ppl === null ? null : roundMetric(lastEval.ppl),
      best_test_acc: accs.length ? Math.max(...accs) : null,
      samples_per_s: this.trainSeconds > 0 ? roundMetric(this.trainSamples / this.trainSeconds) : 0,
      elapsed_s: roundMetric(this.elapsed()), peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)), // maxRSS: kB
      worker_peak_mb: null, worker_memory: null, resumed_from: counters.resumedFrom, checkpoint: save ?? null, metrics: metrics ?? null,
      history: this.history,
    };
  }

  private emit(r: MetricsRecord): void { this.records.push(r); this.metrics?.write(r); }

  /** Adds a step to the epoch's sums and writes its record if due; returns the time it was counted. */
  private count(step: number, loss: number, n: number, lr: number, resetWindow: boolean): number {
    this.lossSum += loss; this.batches++; this.samples += n; this.windowSamples += n;
    const now = performance.now();
    if (step % this.o.logEvery === 0) {
      this.emit({ type: "step", epoch: this.epoch + 1, step, loss, test_loss: null, test_acc: null,
        samples_per_s: roundMetric(this.windowSamples / Math.max(1e-9, (now - this.windowStart) / 1000)), lr, elapsed_s: roundMetric(this.elapsed()) });
      if (resetWindow) { this.windowStart = now; this.windowSamples = 0; }
    }
    return now;
  }

  private drawProgress(loss: number, now: number): void {
    const bar = this.o.progress;
    if (!bar) return;
    const { samples, epoch } = this;
    const per = this.o.task.samplesPerEpoch;
    const rate = samples / Math.max(1e-9, (now - this.epochStart) / 1000);
    const left = (per - samples) + (this.o.epochs - epoch - 1) * per;
    bar.update({ label: `epoch ${epoch + 1}/${this.o.epochs}`, done: samples, total: per,
      samplesPerS: rate, loss, etaS: left / rate }, samples >= per);
  }
}
