// `pipewright bench parallel`: the collectives and the non-pipeline parallelism on worker threads:
// all-reduce latency/bandwidth, data-parallel replicas against one, tensor-parallel MLP against one
// rank. One JSON object per line with --json; the records come from the modules' own benchmarks.
import { helpText, parseFlags, UsageError, type CommandSpec } from "./args.js";
import { cpuLabel, machineCpu } from "../backend/index.js";

const PARTS = ["allreduce", "data", "tensor"] as const;
type Part = (typeof PARTS)[number];

export const benchParallelCommand = {
  name: "bench parallel",
  summary: "All-reduce between worker threads (shared memory, fixed order), data-parallel replicas " +
    "(MLP 784-1024-1024-10, batch 256) and a tensor-parallel MLP block (1024 -> 4096 -> 1024, 512 tokens), " +
    "each against one worker. One JSON object per line with --json, each with \"cpu\": {\"model\", \"isa\", \"cores\"}.",
  flags: {
    json: { type: "bool", help: "one JSON object per line" },
    parts: { type: "list", default: PARTS.join(","), meta: "P,P,...", help: `what to measure, from ${PARTS.join(", ")}` },
    steps: { type: "int", min: 3, default: 10, meta: "N", help: "timed steps per configuration (median)" },
  },
  examples: ["pipewright bench parallel --json", "pipewright bench parallel --parts data --steps 20"],
} as const satisfies CommandSpec;

export async function runBenchParallel(argv: string[]): Promise<number> {
  const f = parseFlags(benchParallelCommand, argv);
  if (f.help) { process.stdout.write(helpText(benchParallelCommand) + "\n"); return 0; }
  const { parts, steps } = f;
  const bad = parts.filter((p) => !PARTS.includes(p as Part));
  if (bad.length) throw new UsageError(`--parts: '${bad.join(",")}' is not valid; choose from ${PARTS.join(", ")}`);
  // Every JSON line names the machine; the human output names it once, first.
  const cpu = machineCpu();
  if (!f.json) process.stdout.write(`cpu: ${cpuLabel(cpu)}\n`);
  const print = (part: Part, rec: object): void => {
    process.stdout.write((f.json ? JSON.stringify({ bench: part, ...rec, cpu }) : `${part}: ${JSON.stringify(rec)}`) + "\n");
  };
  if (parts.includes("allreduce")) {
    const { benchAllReduce } = await import("../transport/bench.js");
    for (const r of await benchAllReduce()) print("allreduce", r);
  }
  if (parts.includes("data")) {
    const { benchDataParallel } = await import("../parallel/bench.js");
    for (const r of await benchDataParallel({ steps })) print("data", r);
  }
  if (parts.includes("tensor")) {
    const { benchTensorParallelMlp } = await import("../parallel/tp-bench.js");
    for (const r of await benchTensorParallelMlp({ steps })) print("tensor", r);
  }
  return 0;
}
