// `pipewright repro pipetransformer`: the paper's breakdown on Fashion-MNIST with the ViT, in a
// fine-tuning setting: per seed the ViT is first trained (untimed) on the second half of the training
// images, then fine-tuned on a slice of the first half four ways, each timed to the same number of
// epochs: baseline pipeline (2 stages, no freezing); freezing only (same pipeline, frozen layers get
// no backward); freezing + AutoPipe + AutoDP; all four (+ AutoCache). Rows run interleaved per seed so
// load from other processes on the shared machine spreads over all of them (odd seeds in reverse order). Prints wall-clock time,
// speed-up over the baseline and test accuracy (mean ± std over seeds) and writes the freeze trace of
// the all-four run of the first seed, which `pipewright sim --freeze-trace FILE --workers 8` replays.
import { asUsage, command, type CommandSpec, UsageError } from "./args.js";
import { emit } from "./output.js";
import { FREEZE_CRITERIA, parseAlpha, parseFreezeCriterion, predictSpeedup, type FreezeTrace } from "../pipeline/freeze/index.js";
import { trainElastic } from "../train/elastic.js";
import { loadImageDatasets } from "../train/task.js";
import type { TensorDataset } from "../data/loader.js";
import type { ModelSpec } from "../nn/models/spec.js";
import type { Tensor } from "../tensor/tensor.js";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import { mean, sampleStd } from "../util/stats.js";

const reproPipetransformerCommand = {
  name: "repro pipetransformer",
  summary: "PipeTransformer breakdown on Fashion-MNIST with the ViT (fine-tuning): baseline pipeline, freezing only, " +
    "freezing + AutoPipe + AutoDP, all four (+ AutoCache); wall-clock, speed-up and test accuracy, mean ± std over seeds.",
  flags: {
    epochs: { type: "int", min: 1, default: 4, help: "fine-tuning epochs of every row", meta: "N" },
    seeds: { type: "int", min: 1, default: 2, help: "seeds (each: its own pre-training, init and data order)", meta: "K" },
    "pretrain-epochs": { type: "int", min: 0, default: 3, help: "untimed pre-training epochs on the second half of the training images", meta: "N" },
    limit: { type: "int", min: 64, default: 20000, help: "fine-tuning examples (from the first half of the training images)", meta: "N" },
    batch: { type: "int", min: 2, default: 64, help: "mini-batch size", meta: "B" },
    lr: { type: "number", min: 0, default: 1e-4, help: "fine-tuning learning rate (AdamW, cosine)", meta: "X" },
    "freeze-alpha": { type: "string", default: "1/2", help: "freeze alpha (1/2 aggressive; the paper's tables use 1/3)", meta: "A" },
    "freeze-criterion": { type: "string", choices: FREEZE_CRITERIA, default: "grad-norm", help: "freeze criterion" },
    workers: { type: "int", min: 1, default: 2, help: "worker threads (cores)", meta: "W" },
    trace: { type: "string", default: "pipetransformer-trace.json", help: "write the all-four run's freeze trace here", meta: "FILE" },
    data: { type: "string", help: "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)", meta: "DIR" },
    json: { type: "bool", help: "print one JSON object instead of the table" },
  },
  examples: ["pipewright repro pipetransformer", "pipewright repro pipetransformer --epochs 4 --seeds 3 --json",
    "pipewright sim --freeze-trace pipetransformer-trace.json --workers 8"],
} as const satisfies CommandSpec;

const ROWS = [
  { name: "baseline pipeline (no freezing)", freeze: false, elastic: false, cache: false },
  { name: "freezing only", freeze: true, elastic: false, cache: false },
  { name: "freezing + AutoPipe + AutoDP", freeze: true, elastic: true, cache: false },
  { name: "all four (+ AutoCache)", freeze: true, elastic: true, cache: true },
];

const meanStd = (xs: number[]): [number, number] => [mean(xs), sampleStd(xs)];

function slice(ds: TensorDataset, from: number, to: number): TensorDataset {
  const size = ds.inputs.length / ds.n;
  return { inputs: ds.inputs.slice(from * size, to * size), labels: ds.labels.slice(from, to), n: to - from, sampleShape: ds.sampleShape };
}

export const runReproPipetransformer = command(reproPipetransformerCommand, async (f) => {
  const alpha = asUsage(() => parseAlpha(f["freeze-alpha"]));
  const criterion = asUsage(() => parseFreezeCriterion(f["freeze-criterion"]));
  const { epochs, seeds, batch, workers, limit } = f;
  const log = f.json ? (): void => {} : (m: string): void => { process.stderr.write(m + "\n"); };
  const all = loadImageDatasets(f.data);
  const half = Math.floor(all.train.n / 2);
  if (limit > half) throw new UsageError(`--limit ${limit} exceeds the first half of the training images (${half})`);
  const fine = { train: slice(all.train, 0, limit), test: all.test };
  const pre = { train: slice(all.train, half, all.train.n), test: all.test };
  const spec: ModelSpec = { name: "vit" };
  const times: number[][] = ROWS.map(() => []), accs: number[][] = ROWS.map(() => []);
  let trace: FreezeTrace | null = null;
  const details: unknown[] = [];
  for (let seed = 0; seed < seeds; seed++) {
    let init: Map<string, Tensor> | undefined;
    if (f["pretrain-epochs"] > 0) {
      log(`seed ${seed}: pre-training ${f["pretrain-epochs"]} epoch(s) on ${pre.train.n} images (untimed)`);
      const p = await trainElastic({ spec, seed, epochs: f["pretrain-epochs"], batch, optimizer: { name: "adamw", lr: 1e-3, weightDecay: 0.01 },
        scheduleLr: "cosine", warmup: 50, workers, stages: 1, freeze: null, elastic: false, cache: false, datasets: pre });
      init = p.state;
      log(`seed ${seed}: pre-trained test acc ${(p.testAcc * 100).toFixed(2)}%`);
    }
    // Odd seeds run the rows in reverse, so a drift in the machine's load favours no row.
    const order = seed % 2 === 0 ? [0, 1, 2, 3] : [3, 2, 1, 0];
    for (const i of order) {
      const row = ROWS[i];
      log(`seed ${seed}: ${row.name}`);
      const r = await trainElastic({
        spec, seed, epochs, batch, optimizer: { name: "adamw", lr: f.lr, weightDecay: 0.01 }, scheduleLr: "cosine", warmup: 0,
        workers, freeze: row.freeze ? { alpha, interval: 1, criterion } : null,
        elastic: row.elastic, cache: row.cache, datasets: fine, initialState: init, log: (m) => log(`  ${m}`),
      });
      times[i].push(r.trainSeconds);
      accs[i].push(r.testAcc);
      details.push({ seed, row: row.name, seconds: r.trainSeconds, test_acc: r.testAcc, epochs: r.epochs });
      if (row.cache && seed === 0) trace = r.trace;
    }
  }
  if (trace) writeFileAtomic(f.trace, JSON.stringify(trace, null, 1) + "\n");
  const base = meanStd(times[0])[0];
  const rows = ROWS.map((row, i) => {
    const [t, ts] = meanStd(times[i]), [a, as] = meanStd(accs[i]);
    const sp = times[i].map((x, k) => times[0][k] / x);
    const [s, ss] = meanStd(sp);
    return { row: row.name, seconds: t, seconds_std: ts, speedup: s, speedup_std: ss, speedup_of_means: base / t, test_acc: a, test_acc_std: as };
  });
  const pred = trace ? predictSpeedup(trace, 8) : null;
  const pm = (m: number, s: number, d: number): string => `${m.toFixed(d)} ± ${s.toFixed(d)}`;
  const lines = [`PipeTransformer breakdown: ViT on Fashion-MNIST, fine-tuning ${limit} images for ${epochs} epochs, batch ${batch}, ${workers} workers, ${seeds} seed(s)`,
    "| configuration | wall-clock s | speed-up | test acc % |", "|---|---|---|---|",
    ...rows.map((r) => `| ${r.row} | ${pm(r.seconds, r.seconds_std, 1)} | ${pm(r.speedup, r.speedup_std, 2)}x | ${pm(r.test_acc * 100, r.test_acc_std * 100, 2)} |`)];
  if (pred) lines.push(`freeze trace: ${f.trace}; predicted speed-up on 8 workers: ${pred.speedup.toFixed(2)}x (pipewright sim --freeze-trace ${f.trace} --workers 8)`);
  emit(f.json, { epochs, seeds, limit, batch, workers, alpha, criterion: f["freeze-criterion"], rows, trace: f.trace, predicted_8_workers: pred?.speedup ?? null,
    runs: details }, lines.join("\n"));
  return 0;
});
