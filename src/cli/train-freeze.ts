// `pipewright train --model vit --freeze ...`: PipeTransformer's elastic training (issue 5), kept out
// of train.ts so that file only dispatches. Uses the freeze module's parsers for alpha and criterion.
import { UsageError, type FlagSpec, type FlagValues } from "./args.js";
import { setBackend, type BackendName } from "../backend/index.js";
import { FREEZE_CRITERIA, parseAlpha, parseFreezeCriterion, resolveFreezeConfig } from "../pipeline/freeze/index.js";
import { trainElastic } from "../train/elastic.js";
import { optimizerConfigOf } from "../train/pipeline.js";
import type { TrainConfig } from "../train/options.js";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";

export const FREEZE_FLAGS: Record<string, FlagSpec> = {
  freeze: { type: "bool", help: "PipeTransformer: freeze a growing prefix of layers, re-partition the pipeline, replicas from freed workers" },
  "freeze-alpha": { type: "string", help: "freeze: fraction of the active layers frozen per check, e.g. 1/3 (default) or 1/2", meta: "A" },
  "freeze-interval": { type: "int", min: 1, help: "freeze: epochs between freeze checks (default 1)", meta: "N" },
  "freeze-criterion": { type: "string", choices: FREEZE_CRITERIA, help: "freeze: grad-norm (alpha schedule bounded by the gradient criterion, default) or schedule" },
  elastic: { type: "string", choices: ["on", "off"], help: "freeze: AutoPipe re-partitioning + AutoDP replicas (default on)" },
  cache: { type: "string", choices: ["on", "off"], help: "freeze: AutoCache of the frozen prefix's outputs (default on)" },
  "cache-mb": { type: "int", min: 1, help: "freeze: memory bound of the activation cache in MB (default 1024)", meta: "MB" },
  "freeze-trace": { type: "string", help: "freeze: write the freeze trace (JSON) for `pipewright sim --freeze-trace`", meta: "FILE" },
};
export const FREEZE_FLAG_NAMES = Object.keys(FREEZE_FLAGS);

export async function runFreezeTraining(f: FlagValues, given: Set<string>, cfg: TrainConfig): Promise<number> {
  if (cfg.model !== "vit") throw new UsageError(`--freeze trains the vit model (its units are attention and MLP sub-blocks); got --model ${cfg.model}`);
  for (const n of ["schedule", "microbatches", "chunks", "partition", "balance", "executor", "recompute", "resume", "save", "metrics", "svg"]) {
    if (given.has(n)) throw new UsageError(`--${n} does not apply with --freeze (the layout is chosen by AutoPipe: GPipe on worker threads)`);
  }
  let freeze;
  try {
    freeze = resolveFreezeConfig({
      alpha: f["freeze-alpha"] !== undefined ? parseAlpha(f["freeze-alpha"] as string) : undefined,
      interval: f["freeze-interval"] as number | undefined,
      criterion: f["freeze-criterion"] !== undefined ? parseFreezeCriterion(f["freeze-criterion"] as string) : undefined,
    });
  } catch (e) { throw new UsageError((e as Error).message); }
  if (f.backend !== undefined) setBackend(f.backend as BackendName);
  const workers = (f.workers as number | undefined) ?? 2;
  const stages = (f.stages as number | undefined) ?? workers;
  if (stages > workers) throw new UsageError(`--stages ${stages} exceeds --workers ${workers}; the pipeline needs one worker per stage`);
  const quiet = f.quiet === true;
  const log = quiet ? (): void => {} : (m: string): void => { process.stderr.write(m + "\n"); };
  const r = await trainElastic({
    spec: cfg.spec ?? { name: "vit" }, seed: cfg.seed, epochs: cfg.epochs, batch: cfg.batch, optimizer: optimizerConfigOf(cfg),
    scheduleLr: cfg.scheduleLr, warmup: cfg.warmup, workers, stages, freeze, elastic: f.elastic !== "off", cache: f.cache !== "off",
    cacheBytes: ((f["cache-mb"] as number | undefined) ?? 1024) * 1024 * 1024, data: cfg.data, limit: cfg.limit, log,
  });
  if (f["freeze-trace"] !== undefined) writeFileAtomic(f["freeze-trace"] as string, JSON.stringify(r.trace, null, 1) + "\n");
  const summary = {
    model: "vit", epochs: cfg.epochs, train_seconds: r.trainSeconds, test_acc: r.testAcc, test_loss: r.testLoss,
    freeze: { alpha: freeze.alpha, interval: freeze.interval, criterion: freeze.criterion, elastic: f.elastic !== "off", cache: f.cache !== "off" },
    history: r.epochs, trace: f["freeze-trace"] ?? null,
  };
  if (f.json) process.stdout.write(JSON.stringify(summary) + "\n");
  else {
    process.stdout.write(`trained      ${cfg.epochs} epochs with freezing (alpha ${freeze.alpha.toFixed(3)}, ${freeze.criterion})\n` +
      `test acc     ${(r.testAcc * 100).toFixed(2)}%\ntrain time   ${r.trainSeconds.toFixed(1)} s\n` +
      `final layout frozen ${r.epochs[r.epochs.length - 1].frozen} layers, ${r.epochs[r.epochs.length - 1].stages} stage(s) x ${r.epochs[r.epochs.length - 1].replicas} replica(s)\n`);
  }
  return 0;
}
