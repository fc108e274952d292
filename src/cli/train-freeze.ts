// `pipewright train --model vit|gpt --freeze ...`: PipeTransformer's elastic training, kept out
// of train.ts so that file only dispatches. Uses the freeze module's parsers for alpha and criterion.
// --save / --resume / --metrics / --svg work as in `train` (src/train/elastic.ts has the details).
import { asUsage, UsageError, type FlagSpecs, type FlagValues } from "./args.js";
import { setBackend, type BackendName } from "../backend/index.js";
import { FREEZE_CRITERIA, parseAlpha, parseFreezeCriterion, resolveFreezeConfig } from "../pipeline/freeze/index.js";
import { elasticCheckpointSettings, trainElastic } from "../train/elastic.js";
import { existsSync, readFileSync } from "node:fs";
import { parseMetrics, type MetricsRecord } from "../train/metrics.js";
import { ProgressBar } from "../train/progress.js";
import { lossCurveSvg } from "../report/loss-curve-svg.js";
import type { TrainConfig } from "../train/options.js";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import { isWriterRank, launchEnv, notUnderMpiMessage } from "../transport/mpi/env.js";

export const FREEZE_FLAGS = {
  freeze: { type: "bool", help: "PipeTransformer: freeze a growing prefix of layers (vit, gpt), re-partition the pipeline, replicas from freed workers" },
  "freeze-alpha": { type: "string", help: "freeze: fraction of the active layers frozen per check, e.g. 1/3 (default) or 1/2", meta: "A" },
  "freeze-interval": { type: "int", min: 1, help: "freeze: epochs between freeze checks (default 1)", meta: "N" },
  "freeze-criterion": { type: "string", choices: FREEZE_CRITERIA, help: "freeze: grad-norm (alpha schedule bounded by the gradient criterion, default) or schedule" },
  elastic: { type: "string", choices: ["on", "off"], help: "freeze: AutoPipe re-partitioning + AutoDP replicas (default on)" },
  cache: { type: "string", choices: ["on", "off"], help: "freeze: AutoCache of the frozen prefix's outputs (default on; off for gpt)" },
  "cache-mb": { type: "int", min: 1, help: "freeze: memory bound of the activation cache in MB (default 1024)", meta: "MB" },
  "freeze-trace": { type: "string", help: "freeze: write the freeze trace (JSON) for `pipewright sim --freeze-trace`", meta: "FILE" },
} as const satisfies FlagSpecs;
export const FREEZE_FLAG_NAMES = Object.keys(FREEZE_FLAGS);

/** What a freeze run reads of `train`'s flags: its own and these. */
type FreezeRunFlags = FlagValues<typeof FREEZE_FLAGS> &
  { executor?: string; workers?: number; stages?: number; backend?: BackendName; quiet?: boolean; svg?: string; json?: boolean };

/** The built-in models whose layers the freeze policy and AutoPipe cut (transformer blocks). */
const FREEZE_MODELS: readonly string[] = ["vit", "gpt"];

const mapDefined = <T, U>(v: T | undefined, fn: (v: T) => U): U | undefined => (v === undefined ? undefined : fn(v));

export async function runFreezeTraining(f: FreezeRunFlags, given: Set<string>, cfg: TrainConfig): Promise<number> {
  /** A flag given on the command line (a resumed run keeps its saved value otherwise). */
  const flag = <K extends keyof FreezeRunFlags>(n: K): FreezeRunFlags[K] | undefined => (given.has(n) ? f[n] : undefined);
  if (!FREEZE_MODELS.includes(cfg.model)) {
    throw new UsageError(`--freeze trains the models made of transformer blocks (${FREEZE_MODELS.join(", ")}: their units are attention and MLP sub-blocks); got --model ${cfg.model}`);
  }
  for (const n of ["schedule", "microbatches", "chunks", "partition", "balance", "recompute", "replicas"]) {
    if (given.has(n)) throw new UsageError(`--${n} does not apply with --freeze (the layout is chosen by AutoPipe: GPipe on worker threads or MPI ranks)`);
  }
  const executor = f.executor ?? "threads";
  if (executor !== "threads" && executor !== "processes") {
    throw new UsageError(`--executor ${executor} does not apply with --freeze; use threads (default) or processes (one MPI rank per worker)`);
  }
  const mpi = executor === "processes" ? launchEnv() : null;
  if (executor === "processes" && !mpi) throw new UsageError(notUnderMpiMessage(flag("workers") ?? 2));
  // Under MPI every rank trains; rank 0 alone prints and writes files.
  const silent = executor === "processes" && !isWriterRank();
  // A resumed run keeps the saved freeze settings unless a flag is given again.
  const saved = cfg.resume !== undefined ? asUsage(() => elasticCheckpointSettings(cfg.resume!)) : undefined;
  const freeze = asUsage(() => resolveFreezeConfig({
    alpha: mapDefined(flag("freeze-alpha"), parseAlpha) ?? saved?.freeze?.alpha,
    interval: flag("freeze-interval") ?? saved?.freeze?.interval,
    criterion: mapDefined(flag("freeze-criterion"), parseFreezeCriterion) ?? saved?.freeze?.criterion,
  }));
  if (f.backend !== undefined) setBackend(f.backend);
  // On MPI the job's size is the worker count unless --workers says otherwise (then they must agree).
  const workers = flag("workers") ?? (mpi ? mpi.size : saved?.workers ?? 2);
  const stages = flag("stages") ?? saved?.stages ?? workers;
  if (stages > workers) throw new UsageError(`--stages ${stages} exceeds --workers ${workers}; the pipeline needs one worker per stage`);
  const elastic = mapDefined(flag("elastic"), (v) => v !== "off") ?? saved?.elastic ?? true;
  // gpt's text windows are drawn afresh every step: no example index to cache under.
  const text = cfg.model === "gpt";
  const cache = mapDefined(flag("cache"), (v) => v !== "off") ?? saved?.cache ?? !text;
  if (cache && text) throw new UsageError(`--cache on does not apply to --model gpt (AutoCache keys the frozen prefix's outputs by example; gpt's text windows are drawn afresh every step); use --cache off`);
  const cacheBytes = mapDefined(flag("cache-mb"), (mb) => mb * 1024 * 1024) ?? saved?.cacheBytes ?? 1024 * 1024 * 1024;
  const quiet = f.quiet === true || silent;
  const bar = quiet || !process.stderr.isTTY ? undefined : new ProgressBar(process.stderr);
  const log = quiet ? (): void => {} : bar ? (m: string): void => bar.log(m) : (m: string): void => { process.stderr.write(m + "\n"); };
  const r = await trainElastic({
    ...cfg, spec: cfg.spec ?? { name: cfg.model }, workers, stages, freeze, elastic, cache, cacheBytes, log, progress: bar,
    save: silent ? undefined : cfg.save, metrics: silent ? undefined : cfg.metrics, executor,
  });
  if (silent) return 0;
  if (f["freeze-trace"] !== undefined) writeFileAtomic(f["freeze-trace"], JSON.stringify(r.trace, null, 1) + "\n");
  if (f.svg !== undefined) {
    // As in `train`: the metrics file holds earlier segments of a resumed run too; without one, this run's records.
    const records: MetricsRecord[] = cfg.metrics && existsSync(cfg.metrics) ? parseMetrics(readFileSync(cfg.metrics, "utf8"), cfg.metrics) : r.records;
    writeFileAtomic(f.svg, lossCurveSvg(records, `pipewright train --model ${cfg.model} --freeze`));
  }
  const last = r.epochs[r.epochs.length - 1];
  const summary = {
    model: cfg.model, epochs: cfg.epochs, steps: r.steps, train_seconds: r.trainSeconds, elapsed_s: r.elapsedSeconds, test_acc: r.testAcc, test_loss: r.testLoss,
    freeze: { alpha: freeze.alpha, interval: freeze.interval, criterion: freeze.criterion, elastic, cache },
    history: r.epochs, trace: f["freeze-trace"] ?? null, resumed_from: r.resumedFrom, checkpoint: cfg.save ?? null,
    metrics: cfg.metrics ?? null, curves: f.svg ?? null,
  };
  if (f.json) process.stdout.write(JSON.stringify(summary) + "\n");
  else {
    process.stdout.write(`trained      ${cfg.epochs} epochs, ${r.steps} steps with freezing (alpha ${freeze.alpha.toFixed(3)}, ${freeze.criterion})` +
      `${r.resumedFrom ? ` (resumed at epoch ${r.resumedFrom.epoch})` : ""}\n` +
      (text ? `test ppl     ${Math.exp(r.testLoss).toFixed(3)}\n` : `test acc     ${(r.testAcc * 100).toFixed(2)}%\n`) + `train time   ${r.trainSeconds.toFixed(1)} s\n` +
      (last ? `final layout frozen ${last.frozen} layers, ${last.stages} stage(s) x ${last.replicas} replica(s)\n` : "") +
      (cfg.save ? `checkpoint   ${cfg.save}\n` : "") + (cfg.metrics ? `metrics      ${cfg.metrics}\n` : "") +
      (f.svg !== undefined ? `curves       ${f.svg}\n` : ""));
  }
  return 0;
}
