// The `pipewright` entry point: dispatches `pipewright <command> ...` to a command module. Commands
// are loaded lazily so that `--help` stays instant and a command never loads what it does not use
// (the native addon, worker code).
import { readFileSync } from "node:fs";
import { UsageError } from "./args.js";
import { mpiStarted } from "../transport/mpi/transport.js";
import { endJob } from "../pipeline/runtime/rank-failure.js";

interface Command {
  summary: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  train: {
    summary: "train a model (mlp, cnn, vit, gpt) on one device or as a pipeline",
    run: async (argv) => (await import("./train.js")).runTrain(argv),
  },
  bench: {
    summary: "benchmarks: `bench engine` (per-step speed), `bench compare` (against PyTorch), `bench pipeline`",
    run: async (argv) => (await import("./bench.js")).runBench(argv),
  },
  sim: {
    summary: "simulate a pipeline schedule: bubble fraction, makespan, peak activations, timeline",
    run: async (argv) => (await import("./sim.js")).runSim(argv),
  },
  eval: {
    summary: "evaluate a checkpoint; export inputs and logits for the PyTorch check",
    run: async (argv) => (await import("./eval.js")).runEval(argv),
  },
  checkpoint: {
    summary: "`checkpoint merge`: a checkpoint saved in parts (one per MPI rank) as one safetensors file",
    run: async (argv) => (await import("./checkpoint.js")).runCheckpoint(argv),
  },
  launch: {
    summary: "run `train` or your own `node SCRIPT` on N MPI ranks through mpirun: one OS process per pipeline worker, local or across hosts",
    run: async (argv) => (await import("./launch.js")).runLaunch(argv),
  },
  trace: {
    summary: "`trace report FILE`: busy/waiting/bubble per worker and the critical path of a trace written by --trace",
    run: async (argv) => (await import("./trace.js")).runTrace(argv),
  },
  repro: {
    summary: "reproduce a method's claim: `repro pipemare`, `repro pb`, `repro pipetransformer`",
    run: async (argv) => (await import("./repro.js")).runRepro(argv),
  },
};

function version(): string {
  // The compiled entry, dist/src/cli/main.js, sits three levels below the package root.
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 4;
  return [
    "Usage: pipewright <command> [flags]",
    "",
    "Pipeline-parallel neural network training in TypeScript.",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`),
    "",
    "Run `pipewright <command> --help` for the flags of a command; `pipewright --version` for the version.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    // Without a command it is a usage error: the text goes to stderr and the exit code is 2.
    (name === undefined ? process.stderr : process.stdout).write(usage() + "\n");
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V" || name === "version") {
    process.stdout.write(`pipewright ${version()}\n`);
    return 0;
  }
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd) {
    throw new UsageError(`pipewright: unknown command '${name}'; valid commands: ${Object.keys(COMMANDS).join(", ")}`);
  }
  return cmd.run(rest);
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
