// `pipewright repro <experiment>`: reproductions of the methods' claims, each an experiment module
// that trains, prints a table and draws curves. Experiments load lazily, like commands.
import { lazy, runSubcommand, type Subcommand } from "./args.js";

const EXPERIMENTS: Record<string, Subcommand> = {
  pipemare: lazy("PipeMare vs synchronous, naive asynchronous and stashing on a fine-grained asynchronous pipeline",
    async () => (await import("./repro-pipemare.js")).runReproPipemare),
  pb: lazy("Pipelined Backpropagation at batch size 1 with Spike Compensation and Linear Weight Prediction",
    async () => (await import("./repro-pb.js")).runReproPb),
  pipetransformer: lazy("PipeTransformer breakdown: freezing, AutoPipe, AutoDP, AutoCache on the ViT",
    async () => (await import("./repro-pipetransformer.js")).runReproPipetransformer),
};

export const runRepro = (argv: string[]): Promise<number> => runSubcommand("pipewright repro", "experiment", EXPERIMENTS, argv);
