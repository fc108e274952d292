// `pipewright repro pipemare`: PipeMare against synchronous 1F1B, naive asynchronous training and
// PipeDream weight stashing on a fine-grained asynchronous pipeline (docs/methods-usage.md). Every
// row uses the same base hyper-parameters, those that suit synchronous
// training: an MLP of eight Linear layers (width 256) cut one layer per stage into S = 8 stages,
// batch 32 in M = 4 micro-batches (delays tau_s = ceil((2(S-1-s)+1)/4) = 4,4,3,3,2,2,1,1), momentum
// SGD (lr 0.05, m 0.9) with a cosine schedule over 5 epochs (synchronous: ~88%). With M = 1
// (delays 15..1) every asynchronous row diverges at these hyper-parameters.
import { command, type CommandSpec, UsageError } from "./args.js";
import { COMMON_FLAGS, runExperiment, selectRows, settingsFrom, type ReproRow } from "./repro-async.js";
import { parseAsyncConfig } from "../pipeline/weights/config.js";
import type { ModelSpec } from "../nn/models/spec.js";

const STAGES = 8;
/** Flatten, (Linear, ReLU) x 7, Linear: 16 units, one Linear (+ its ReLU) per stage. */
const SPEC: ModelSpec = { name: "mlp", input: 784, hidden: [256, 256, 256, 256, 256, 256, 256], classes: 10 };
const BALANCE = [3, 2, 2, 2, 2, 2, 2, 1];

const reproPipemareCommand = {
  name: "repro pipemare",
  summary: `PipeMare (T1 learning-rate rescheduling, T2 discrepancy correction) against synchronous 1F1B, naive asynchronous and ` +
    `PipeDream weight stashing: an MLP of 8 Linear layers cut into ${STAGES} stages (one layer each), asynchronous 1F1B ` +
    `without flush, Fashion-MNIST, every row with the same hyper-parameters. Table: method, delays, final test accuracy ` +
    `(mean ± std over seeds), peak memory of weights + optimizer state (+ extra weight versions) per stage.`,
  flags: {
    ...COMMON_FLAGS,
    lr: { type: "number", min: 0, help: "base learning rate of every row (default 0.05)", meta: "X" },
    batch: { type: "int", min: 1, help: "mini-batch size (default 32)", meta: "B" },
    momentum: { type: "number", min: 0, help: "SGD momentum (default 0.9)", meta: "M" },
    microbatches: { type: "int", min: 1, help: "micro-batches per step M (delays tau_s = ceil((2(S-1-s)+1)/M); default 4: 4,4,3,3,2,2,1,1)", meta: "M" },
    "warmup-epochs": { type: "int", min: 0, help: "synchronous 1F1B epochs before going asynchronous in the warm-up rows (default 1; 0 drops those rows)", meta: "K" },
  },
  examples: ["pipewright repro pipemare", "pipewright repro pipemare --epochs 2 --seeds 2 --limit 10000 --svg pipemare.svg"],
} as const satisfies CommandSpec;

export const runReproPipemare = command(reproPipemareCommand, async (f) => {
  const st = settingsFrom(f, SPEC, { epochs: 5, seeds: 2 });
  const train = { batch: f.batch ?? 32, lr: f.lr ?? 0.05, momentum: f.momentum ?? 0.9, weightDecay: 0 };
  const pipe = { stages: STAGES, microbatches: f.microbatches ?? 4, balance: BALANCE };
  const asyncRow = (key: string, label: string, flags: Record<string, string | number>): ReproRow =>
    ({ key, label, train, pipeline: { ...pipe, schedule: "async", async: parseAsyncConfig(flags) } });
  const rows: ReproRow[] = [
    { key: "sync", label: "synchronous 1F1B", train, pipeline: { ...pipe, schedule: "1f1b" } },
    asyncRow("naive", "naive async", { method: "naive" }),
    asyncRow("stash", "PipeDream stash", { method: "stash" }),
    asyncRow("t1", "PipeMare T1 only", { method: "pipemare", "pipemare-correction": "off" }),
    asyncRow("t2", "PipeMare T2 only", { method: "pipemare", "pipemare-lr": "off" }),
    asyncRow("pipemare", "PipeMare T1+T2", { method: "pipemare" }),
  ];
  // PipeMare's optional synchronous warm-up, and the same warm-up for naive asynchronous training
  // (to show what the warm-up alone does).
  const K = f["warmup-epochs"] ?? 1;
  if (K >= st.epochs && f["warmup-epochs"] !== undefined) {
    throw new UsageError(`--warmup-epochs ${K} must be below --epochs ${st.epochs} (some epochs must run asynchronously)`);
  }
  if (K > 0 && K < st.epochs) {
    rows.push(asyncRow("naive-warmup", `naive async, ${K} sync warm-up epoch(s)`, { method: "naive", "warmup-epochs": K }));
    rows.push(asyncRow("pipemare-warmup", `PipeMare T1+T2, ${K} sync warm-up epoch(s)`, { method: "pipemare", "warmup-epochs": K }));
  }
  const chosen = selectRows(rows, f);
  const title = `repro pipemare: MLP 8 x Linear, ${STAGES} stages, batch ${train.batch}, lr ${train.lr}, momentum ${train.momentum}`;
  return runExperiment("pipemare", title, chosen, st, f, "sync", { stages: STAGES, balance: BALANCE, ...train });
});
