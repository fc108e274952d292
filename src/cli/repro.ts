// `pipewright repro <experiment>`: reproductions of the methods' claims, each an experiment module
// that trains, prints a table and draws curves. Experiments load lazily, like commands.
import { UsageError } from "./args.js";

interface Experiment {
  summary: string;
  run(argv: string[]): Promise<number>;
}

const EXPERIMENTS: Record<string, Experiment> = {
  pipemare: {
    summary: "PipeMare vs synchronous, naive asynchronous and stashing on a fine-grained asynchronous pipeline",
    run: async (argv) => (await import("./repro-pipemare.js")).runReproPipemare(argv),
  },
  pb: {
    summary: "Pipelined Backpropagation at batch size 1 with Spike Compensation and Linear Weight Prediction",
    run: async (argv) => (await import("./repro-pb.js")).runReproPb(argv),
  },
  pipetransformer: {
    summary: "PipeTransformer breakdown: freezing, AutoPipe, AutoDP, AutoCache on the ViT",
    run: async (argv) => (await import("./repro-pipetransformer.js")).runReproPipetransformer(argv),
  },
};

function usage(): string {
  return ["Usage: pipewright repro <experiment> [flags]", "", "Experiments:",
    ...Object.entries(EXPERIMENTS).map(([n, e]) => `  ${n.padEnd(18)}${e.summary}`), "",
    "Run `pipewright repro <experiment> --help` for its flags."].join("\n");
}

export async function runRepro(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    (name === undefined ? process.stderr : process.stdout).write(usage() + "\n");
    return name === undefined ? 2 : 0;
  }
  const e = Object.hasOwn(EXPERIMENTS, name) ? EXPERIMENTS[name] : undefined;
  if (!e) throw new UsageError(`pipewright repro: unknown experiment '${name}'; valid: ${Object.keys(EXPERIMENTS).join(", ")}`);
  return e.run(rest);
}
