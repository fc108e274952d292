// `pipewright bench parallel`: the collectives and the non-pipeline parallelism on worker threads:
// all-reduce latency/bandwidth, data-parallel replicas against one, tensor-parallel MLP against one
// rank; with --ptdp instead, a small gpt under PTD-P layouts (samples/s and per-worker memory). One
// JSON object per line with --json; the records come from the modules' own benchmarks.
import { asUsage, command, type CommandSpec, givenFlags, UsageError } from "./args.js";
import { emit } from "./output.js";
import { cpuLabel, machineCpu } from "../backend/index.js";
import { resolveSpec, type ResolvedSpec } from "../nn/models/spec.js";

/** What --parts measures, in this order; each loaded only when asked for. */
const PART_RECORDS = {
  allreduce: async (): Promise<object[]> => (await import("../transport/bench.js")).benchAllReduce(),
  data: async (steps: number): Promise<object[]> => (await import("../train/bench-data-parallel.js")).benchDataParallel({ steps }),
  tensor: async (steps: number): Promise<object[]> => (await import("../parallel/tp-bench.js")).benchTensorParallelMlp({ steps }),
};
const PARTS = Object.keys(PART_RECORDS) as (keyof typeof PART_RECORDS)[];

const benchParallelCommand = {
  name: "bench parallel",
  summary: "All-reduce between worker threads (shared memory, fixed order), data-parallel replicas " +
    "(MLP 784-1024-1024-10, batch 256) and a tensor-parallel MLP block (1024 -> 4096 -> 1024, 512 tokens), " +
    "each against one worker. With --ptdp instead: a gpt trained on threads under each PTD-P layout " +
    "(stages x tensor ranks x replicas), its samples/s and every worker's memory (parameters, gradients, AdamW state, " +
    "peak activations; bytes counted from tensors). One JSON object per line with --json, each with \"cpu\": {\"model\", \"isa\", \"cores\"}.",
  flags: {
    json: { type: "bool", help: "one JSON object per line" },
    parts: { type: "list", choices: PARTS, default: PARTS.join(","), meta: "P,P,...", help: `what to measure, from ${PARTS.join(", ")}` },
    steps: { type: "int", min: 3, default: 10, meta: "N", help: "timed steps per configuration (median)" },
    ptdp: { type: "bool", help: "measure PTD-P layouts of a gpt instead of --parts" },
    layouts: { type: "list", default: "1x1x1,1x2x1,2x1x1,2x2x1", meta: "PxTxD,...", help: "--ptdp: layouts, stages x tensor ranks x replicas" },
    "sequence-parallel": { type: "bool", help: "--ptdp: sequence parallelism in the layouts with 2 or more tensor ranks" },
    schedule: { type: "string", default: "1f1b", meta: "NAME", help: "--ptdp: a synchronous schedule (gpipe, 1f1b, interleaved, zb-h1)" },
    batch: { type: "int", min: 1, default: 8, meta: "B", help: "--ptdp: sequences per mini-batch" },
    microbatches: { type: "int", min: 1, default: 4, meta: "M", help: "--ptdp: micro-batches per mini-batch" },
    layers: { type: "int", min: 1, default: 4, meta: "L", help: "--ptdp: gpt transformer blocks" },
    width: { type: "int", min: 1, default: 128, meta: "D", help: "--ptdp: gpt width" },
    heads: { type: "int", min: 1, default: 4, meta: "H", help: "--ptdp: gpt attention heads (T must divide them)" },
    context: { type: "int", min: 1, default: 64, meta: "C", help: "--ptdp: gpt context length" },
  },
  examples: ["pipewright bench parallel --json", "pipewright bench parallel --parts data --steps 20",
    "pipewright bench parallel --ptdp --layouts 2x1x1,2x2x1 --sequence-parallel --steps 3 --json"],
} as const satisfies CommandSpec;

export const runBenchParallel = command(benchParallelCommand, async (f, argv) => {
  const { parts, steps } = f;
  const ptdpOnly = ["layouts", "sequence-parallel", "schedule", "batch", "microbatches", "layers", "width", "heads", "context"];
  const stray = f.ptdp ? [] : ptdpOnly.filter((n) => givenFlags(argv).has(n));
  if (stray.length) throw new UsageError(`${stray.map((n) => `--${n}`).join(", ")} only with --ptdp`);
  if (f.ptdp && givenFlags(argv).has("parts")) throw new UsageError("--parts and --ptdp exclude each other: --ptdp measures PTD-P layouts only");
  // Every JSON line names the machine; the human output names it once, first.
  const cpu = machineCpu();
  if (!f.json) process.stdout.write(`cpu: ${cpuLabel(cpu)}\n`);
  const print = (part: string, rec: object): void => emit(f.json, { bench: part, ...rec, cpu }, `${part}: ${JSON.stringify(rec)}`);
  if (f.ptdp) {
    const { benchPtdp, parseLayout } = await import("../train/bench-ptdp.js");
    const spec = asUsage(() => resolveSpec({ name: "gpt", depth: f.layers, dim: f.width, heads: f.heads, context: f.context }) as ResolvedSpec<"gpt">);
    const layouts = asUsage(() => f.layouts.map(parseLayout));
    const { batch, microbatches, schedule } = f;
    for (const r of await benchPtdp({ spec, layouts, sequenceParallel: f["sequence-parallel"] === true, schedule, batch, microbatches, steps })) print("ptdp", r);
    return 0;
  }
  for (const part of PARTS.filter((p) => parts.includes(p))) {
    for (const r of await PART_RECORDS[part](steps)) print(part, r);
  }
  return 0;
});
