// `pipewright repro <experiment>`: reproductions of the methods' claims, each an experiment module
// that trains, prints a table and draws curves. Experiments load lazily, like commands.
import { runSubcommand, type Subcommand } from "./args.js";

const EXPERIMENTS: Record<string, Subcommand> = {
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

export async function runRepro(argv: string[]): Promise<number> {
  return runSubcommand("pipewright repro", "experiment", EXPERIMENTS, argv);
}
