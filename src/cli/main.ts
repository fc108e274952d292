// The `pipewright` entry point: dispatches `pipewright <command> ...` to a command module. Commands
// are loaded lazily so that `--help` stays instant and a command never loads what it does not use
// (the native addon, worker code).
import { readFileSync } from "node:fs";
import { lazy, runSubcommand, UsageError, type Subcommand } from "./args.js";
import { mpiStarted } from "../transport/mpi/transport.js";
import { endJob } from "../pipeline/runtime/rank-failure.js";

const COMMANDS: Record<string, Subcommand> = {
  train: lazy("train a model (mlp, cnn, vit, gpt) on one device or as a pipeline", async () => (await import("./train.js")).runTrain),
  bench: lazy("benchmarks: `bench engine` (per-step speed), `bench compare` (against PyTorch), `bench pipeline`",
    async () => (await import("./bench.js")).runBench),
  sim: lazy("simulate a pipeline schedule: bubble fraction, makespan, peak activations, timeline", async () => (await import("./sim.js")).runSim),
  eval: lazy("evaluate a checkpoint; export inputs and logits for the PyTorch check", async () => (await import("./eval.js")).runEval),
  checkpoint: lazy("`checkpoint merge`: a checkpoint saved in parts (one per MPI rank) as one safetensors file",
    async () => (await import("./checkpoint.js")).runCheckpoint),
  launch: lazy("run `train` or your own `node SCRIPT` on N MPI ranks through mpirun: one OS process per pipeline worker, local or across hosts",
    async () => (await import("./launch.js")).runLaunch),
  trace: lazy("`trace report FILE`: busy/waiting/bubble per worker and the critical path of a trace written by --trace",
    async () => (await import("./trace.js")).runTrace),
  repro: lazy("reproduce a method's claim: `repro pipemare`, `repro pb`, `repro pipetransformer`", async () => (await import("./repro.js")).runRepro),
};

function version(): string {
  // The compiled entry, dist/src/cli/main.js, sits three levels below the package root.
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

export async function main(argv: string[]): Promise<number> {
  if (["--version", "-V", "version"].includes(argv[0])) {
    process.stdout.write(`pipewright ${version()}\n`);
    return 0;
  }
  // Without a command it is a usage error: the text goes to stderr and the exit code is 2.
  return runSubcommand("pipewright", "command", COMMANDS, argv[0] === "help" ? ["--help"] : argv, {
    intro: ["Pipeline-parallel neural network training in TypeScript.", "", "Commands:"], valid: "valid commands",
    more: "Run `pipewright <command> --help` for the flags of a command; `pipewright --version` for the version.",
  });
}

main(process.argv.slice(2)).then(
  async (code) => {
    process.exitCode = code;
    // An MPI rank (--executor processes) finalizes, which also ends the communication thread.
    await mpiStarted()?.finalize();
  },
  (err: unknown) => {
    // A failing MPI rank names itself and ends the whole job rather than leave the others waiting.
    const mpi = mpiStarted();
    if (mpi && !(err instanceof UsageError)) endJob(mpi, err);
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 2;
    } else {
      const e = err instanceof Error ? err : new Error(String(err));
      process.stderr.write(`pipewright: ${e.message}\n`);
      if (process.env.PIPEWRIGHT_DEBUG) process.stderr.write(`${e.stack ?? ""}\n`);
      process.exitCode = 1;
    }
    mpi?.abort(process.exitCode as number);
  },
);
