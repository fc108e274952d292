// `pipewright repro pb`: Pipelined Backpropagation at batch size 1 (docs/methods-usage.md). A small
// CNN with GroupNorm (batch-independent) is cut one unit per stage into a fine-grained asynchronous pipeline; the reference is ordinary mini-batch momentum SGD (batch 32,
// synchronous), then batch size 1 with the hyper-parameters moved by PB's scaling rules
// (scaleForBatch: m_1 = m^(1/32), lr_1 = lr (1/32)(1-m_1)/(1-m), schedule counted in samples), no
// further tuning: naive PB, PB + Spike Compensation, PB + Linear Weight Prediction, PB + SC + LWP.
import { command, type CommandSpec } from "./args.js";
import { COMMON_FLAGS, runExperiment, selectRows, settingsFrom, type ReproRow } from "./repro-async.js";
import { parseAsyncConfig } from "../pipeline/weights/config.js";
import { scaleForBatch } from "../pipeline/weights/scaling.js";
import type { ModelSpec } from "../nn/models/spec.js";

/** (conv3x3, GroupNorm, ReLU, MaxPool) x 2, Flatten, Linear, ReLU, Linear: 12 units, one per stage. */
const SPEC: ModelSpec = { name: "cnn", image: 28, inChannels: 1, channels: [8, 16], hidden: 64, classes: 10, norm: "group", groups: 4 };
const STAGES = 12;
const BALANCE = new Array<number>(STAGES).fill(1);

const reproPbCommand = {
  name: "repro pb",
  summary: `Pipelined Backpropagation at batch size 1 on a ${STAGES}-stage pipeline (a GroupNorm CNN, one layer per stage): ` +
    "mini-batch momentum SGD (the reference), then batch 1 with the scaled hyper-parameters: naive PB, PB + Spike Compensation, " +
    "PB + Linear Weight Prediction, PB + SC + LWP. Table: method, delays, final test accuracy (mean ± std over seeds), peak memory " +
    "of weights + optimizer state (+ prediction buffers) per stage.",
  flags: {
    ...COMMON_FLAGS,
    lr: { type: "number", min: 0, help: "reference learning rate at the reference batch (default 0.1)", meta: "X" },
    batch: { type: "int", min: 2, help: "reference mini-batch size B (default 32)", meta: "B" },
    momentum: { type: "number", min: 0, help: "reference SGD momentum (default 0.9)", meta: "M" },
  },
  examples: ["pipewright repro pb", "pipewright repro pb --epochs 1 --seeds 1 --limit 10000 --svg pb.svg"],
} as const satisfies CommandSpec;

export const runReproPb = command(reproPbCommand, async (f) => {
  const st = settingsFrom(f, SPEC, { epochs: 1, seeds: 2 });
  const B = f.batch ?? 32;
  const ref = { batch: B, lr: f.lr ?? 0.1, momentum: f.momentum ?? 0.9, weightDecay: 0 };
  const scaled = scaleForBatch(ref, B, 1);
  const one = { batch: 1, lr: scaled.lr, momentum: scaled.momentum, weightDecay: scaled.weightDecay };
  const pipe = { stages: STAGES, microbatches: 1, balance: BALANCE };
  const pb = (key: string, label: string, sc: "on" | "off", lwp: "on" | "off"): ReproRow =>
    ({ key, label, train: one, pipeline: { ...pipe, schedule: "async", async: parseAsyncConfig({ method: "pb", "spike-compensation": sc, "weight-prediction": lwp }) } });
  const all: ReproRow[] = [
    { key: "ref", label: `mini-batch SGD (batch ${B}, sync)`, train: ref, pipeline: { ...pipe, schedule: "1f1b" } },
    { key: "sync1", label: "batch 1, synchronous (no delay)", train: one, pipeline: { ...pipe, schedule: "1f1b" } },
    pb("pb", "naive PB", "off", "off"),
    pb("sc", "PB + SC", "on", "off"),
    pb("lwp", "PB + LWP", "off", "on"),
    pb("sclwp", "PB + SC + LWP", "on", "on"),
  ];
  // "sync1" (batch 1 without delay: what the scaling rules alone give) only when --rows names it.
  const rows = f.rows === undefined ? all.filter((r) => r.key !== "sync1") : selectRows(all, f);
  const title = `repro pb: GroupNorm CNN, ${STAGES} stages, reference batch ${B} lr ${ref.lr} m ${ref.momentum} -> batch 1 lr ${scaled.lr.toPrecision(3)} ` +
    `m ${scaled.momentum.toPrecision(5)}`;
  return runExperiment("pb", title, rows, st, f, "ref", { stages: STAGES, reference: ref, scaled });
});
