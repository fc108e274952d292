// `pipewright trace report FILE`: busy, waiting and bubble fractions per worker of a measured trace
// (written by --trace on `train`, `bench pipeline` or createPipeline), the critical path of one step,
// and with --svg the measured timeline below the simulated one for the same costs (src/trace/).
import { existsSync } from "node:fs";
import { command, runSubcommand, UsageError, type CommandSpec, type Subcommand } from "./args.js";
import { emit } from "./output.js";
import { writeFileAtomic } from "../checkpoint/atomic-write.js";
import { formatReport, readTrace, traceReport } from "../trace/report.js";
import { traceTimelineSvg } from "../trace/trace-svg.js";

const traceReportCommand = {
  name: "trace report FILE",
  summary: "Reads a trace written by --trace (Chrome Trace Event JSON) and prints per worker (or MPI rank) the fractions of the " +
    "steps' time spent busy (inside actions), in the bubble (idle before its first and after its last action of a step: fill and " +
    "drain) and waiting (the rest), then the critical path of one step: the chain of actions and messages that decided its end.",
  flags: {
    svg: { type: "string", meta: "OUT.svg", help: "draw the step's measured timeline below the simulated one (the schedule run with the medians of the measured costs)" },
    step: { type: "int", min: 0, meta: "K", help: "the step whose critical path (and timeline) to show (default: the step of median length)" },
    json: { type: "bool", help: "print the report as one JSON object" },
  },
  examples: ["pipewright train --model mlp --schedule 1f1b --stages 2 --microbatches 4 --epochs 1 --limit 512 --trace run.json",
    "pipewright trace report run.json --svg run.svg"],
} as const satisfies CommandSpec;

function runReport(argv: string[]): Promise<number> {
  // The file comes first; the rest are flags.
  const positional = argv[0] !== undefined && !argv[0].startsWith("-");
  const file = positional ? argv[0] : undefined;
  return command(traceReportCommand, (f) => {
    if (file === undefined) throw new UsageError("pipewright trace report: the trace FILE is required, e.g. `pipewright trace report run.json` (see --help)");
    if (!existsSync(file)) throw new UsageError(`pipewright trace report: no such trace file '${file}'`);
    const t = readTrace(file);
    const steps = t.metadata.steps.length;
    const step = f.step;
    if (step !== undefined && step >= steps) throw new UsageError(`--step ${step}: the trace ${file} has steps 0..${steps - 1}`);
    const r = traceReport(t, file, step);
    if (f.svg !== undefined) writeFileAtomic(f.svg, traceTimelineSvg(t, r.critical_step));
    const names = new Map(r.workers.map((w) => [w.pid, w.name]));
    emit(f.json, { ...r, svg: f.svg ?? null }, formatReport(r, names) + (f.svg !== undefined ? `\n\ntimeline     ${f.svg}` : ""));
    return 0;
  })(positional ? argv.slice(1) : argv);
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  report: { summary: "busy, waiting and bubble per worker and the critical path of a trace written by --trace; --svg: measured next to simulated", run: runReport },
};

export const runTrace = (argv: string[]): Promise<number> => runSubcommand("pipewright trace", "action", SUBCOMMANDS, argv);
