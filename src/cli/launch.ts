// `pipewright launch -n N [--hostfile FILE] [--iface NAME|CIDR] [--bind core|none|socket] [--max-restarts K] [--timeout S] -- train ...`:
// runs a pipewright command (or `node SCRIPT`, a library user's SPMD script) on N MPI ranks through
// mpirun, printing the mpirun line first. For `train` it checks that N is the pipeline's worker
// count, adds --executor processes, and with --max-restarts relaunches a failed run from its last
// complete checkpoint (--save FILE).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism, hostname, networkInterfaces } from "node:os";
import { fileURLToPath } from "node:url";
import { asUsage, type CommandSpec, helpText, parseFlags, parseWrapper, UsageError, type FlagValues } from "./args.js";
import { trainCommand } from "./train.js";
import { allLocal, parseHostfile } from "../transport/mpi/hostfile.js";
import { BIND_CHOICES, formatArgv, mpirunArgv } from "../transport/mpi/mpirun.js";
import { checkIface } from "../transport/mpi/iface.js";
import { MPI_INSTALL_HINT, singleCopyWorks } from "../transport/mpi/addon.js";
import { isVSchedule, stagePlacement } from "../pipeline/schedule/index.js";

export const launchCommand = {
  name: "launch",
  summary: "Run `pipewright <command> ...` or `node SCRIPT ...` (after --) on N MPI ranks with mpirun: one rank per pipeline worker for " +
    "`train` (--executor processes is added) or for a library script (createPipeline with executor \"processes\"). Prints the mpirun line it runs. Traffic stays on loopback and shared " +
    "memory when every rank is local; with other hosts it uses only --iface. The job network must be trusted: MPI " +
    "traffic is not authenticated.",
  flags: {
    n: { type: "int", min: 1, aliases: ["-n", "-np"], help: "number of ranks (for train: the pipeline's workers x --replicas; workers are --workers, else --stages, or --stages/2 for zb-v and dualpipev)", meta: "N" },
    hostfile: { type: "string", help: "Open MPI hostfile: one 'HOST [slots=N]' per line", meta: "FILE" },
    iface: { type: "string", help: "network interface or IPv4 subnet (a.b.c.d/N) for MPI traffic (required with remote hosts); checked against this host's interfaces before mpirun starts", meta: "NAME|CIDR" },
    bind: { type: "string", choices: BIND_CHOICES, help: "what each rank is bound to (mpirun --bind-to): one core each, nothing, or its socket (default: core, or none when there are more ranks than cores)" },
    "max-restarts": { type: "int", min: 0, default: 0, help: "train: relaunch a failed run up to K times from its --save checkpoint", meta: "K" },
    timeout: { type: "number", min: 0.1, help: "train: watchdog; a rank that waits S seconds without any message ends the job, naming what it waits for", meta: "S" },
    "mpirun-args": { type: "string", help: "extra mpirun arguments, space-separated (e.g. '--mca plm_rsh_agent ./agent')", meta: "ARGS" },
    "dry-run": { type: "bool", help: "print the mpirun line and exit" },
  },
  examples: [
    "pipewright launch -n 2 -- train --model mlp --schedule 1f1b --stages 2 --microbatches 4",
    "pipewright launch -n 2 -- node examples/regression-mlp.mjs --executor processes",
    "pipewright launch -n 4 --hostfile hosts --iface 10.0.0.0/24 --max-restarts 1 -- train --model cnn --schedule gpipe --stages 4 --microbatches 8 --save ck.safetensors",
  ],
} as const satisfies CommandSpec;

const MAIN = fileURLToPath(new URL("./main.js", import.meta.url));

type TrainFlags = FlagValues<typeof trainCommand.flags>;

/**
 * A train command's pipeline workers: --workers, else --stages, or --stages / 2 for a V schedule
 * (two stages per worker); not --stages for a freeze run, whose rank count is its --workers (AutoDP
 * fills workers / stages replicas from the start). Undefined if unsaid.
 */
function trainWorkers(t: TrainFlags): number | undefined {
  if (t.freeze || t.stages === undefined) return t.workers;
  if (t.schedule === undefined || !isVSchedule(t.schedule)) return t.workers ?? t.stages;
  const { schedule, stages, workers } = t;
  return Math.max(...asUsage(() => stagePlacement(schedule, stages, workers))!) + 1;
}

/** train (`train FLAGS...`): the rank count must equal workers x tensor ranks x replicas; --executor processes is implied. */
export function prepareTrain(n: number, train: readonly string[], t: TrainFlags = parseFlags(trainCommand, train.slice(1))): string[] {
  if (t.executor !== undefined && t.executor !== "processes") {
    throw new UsageError(`launch runs train with --executor processes; the command says --executor ${t.executor}`);
  }
  const workers = trainWorkers(t);
  const replicas = t.replicas ?? 1, tensor = t.tp ?? 1;
  if (workers !== undefined && workers * tensor * replicas !== n) {
    const need = workers * tensor * replicas;
    throw new UsageError(`launch -n ${n} does not match the pipeline: ${workers} worker(s) x ${tensor} tensor rank(s) (--tp) x ${replicas} replica(s) = ${need} rank(s); use -n ${need}`);
  }
  return t.executor === undefined ? [...train, "--executor", "processes"] : [...train];
}

/** The train command resuming from `ck` (any --resume it had, and that flag's value, left out). */
function withResume(train: readonly string[], ck: string): string[] {
  return [...train.filter((a, i) => a !== "--resume" && train[i - 1] !== "--resume" && !a.startsWith("--resume=")), "--resume", ck];
}

/** A pipewright command, or `node SCRIPT ...` (a user's SPMD script) on this very Node. */
export function rankProgram(prog: readonly string[]): string[] {
  return prog[0] === "node" ? [process.execPath, ...prog.slice(1)] : [process.execPath, MAIN, ...prog];
}

/** mpirun's report of a rank that died of a signal (it prints no pipewright line of its own). */
const SIGNAL_DEATH = /process rank (\d+) with PID \d+ on node (\S+) exited on signal (\d+)(?: \(([^)]*)\))?/;

/** The line launch adds for a rank killed by a signal, naming its place in a train pipeline when known. */
export function killedRankLine(mpirunOutput: string, workers?: number, tensor = 1): string | null {
  const m = SIGNAL_DEATH.exec(mpirunOutput);
  if (!m) return null;
  const rank = Number(m[1]);
  // Megatron's order, tensor rank innermost: rank = (replica * workers + worker) * tensor + t.
  const group = Math.floor(rank / tensor), replica = workers ? Math.floor(group / workers) : 0;
  const at = workers ? ` (pipeline worker ${group % workers}${tensor > 1 ? `, tensor rank ${rank % tensor}` : ""}${replica > 0 ? `, replica ${replica}` : ""})` : "";
  return `pipewright launch: rank ${rank}${at} on ${m[2]} was killed by signal ${m[3]}${m[4] ? ` (${m[4]})` : ""}`;
}

function runOnce(argv: string[], workers?: number, tensor = 1): Promise<number> {
  process.stderr.write(`pipewright launch: ${formatArgv(argv)}\n`);
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["inherit", "inherit", "pipe"] });
    // mpirun's own messages pass through; a rank's death by signal gets a line that names it.
    let tail = "";
    child.stderr.on("data", (d: Buffer) => { process.stderr.write(d); tail = (tail + d.toString()).slice(-4096); });
    child.on("error", (e) => { process.stderr.write(`pipewright launch: cannot run mpirun (${e.message}); install Open MPI: ${MPI_INSTALL_HINT}\n`); resolve(127); });
    child.on("close", (code, signal) => {
      const killed = code === 0 ? null : killedRankLine(tail, workers, tensor);
      if (killed) process.stderr.write(`${killed}\n`);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

type LaunchFlags = FlagValues<typeof launchCommand.flags>;

export async function runLaunch(argv: string[]): Promise<number> {
  const { flags: f, command: cmd } = parseWrapper(launchCommand, argv);
  if (f.help) { process.stdout.write(helpText(launchCommand) + "\n"); return 0; }
  if (cmd.length === 0) throw new UsageError("pipewright launch: give the command after --, e.g. `pipewright launch -n 2 -- train ...`");
  if (f.n === undefined) throw new UsageError("pipewright launch: -n N (the number of ranks) is required");
  const n = f.n;
  // The wrapped train command is read with train's own spec (its errors name train's flags).
  const train = cmd[0] === "train" ? parseFlags(trainCommand, cmd.slice(1)) : undefined;
  let program = train ? prepareTrain(n, cmd, train) : cmd;
  const line = mpirunLine(f, n);
  if (f["dry-run"]) { process.stdout.write(formatArgv(line(program)) + "\n"); return 0; }
  const save = train?.save;
  const restarts = f["max-restarts"];
  if (restarts > 0 && save === undefined) throw new UsageError("--max-restarts needs train --save FILE (the checkpoint a restart resumes from)");
  const workers = train ? trainWorkers(train) : undefined, tensor = train?.tp ?? 1;
  let code = await runOnce(line(program), workers, tensor);
  for (let k = 1; code !== 0 && k <= restarts && save !== undefined; k++) {
    if (!existsSync(save)) { process.stderr.write(`pipewright launch: run failed (exit ${code}) before the first checkpoint ${save}; nothing to restart from\n`); return code; }
    process.stderr.write(`pipewright launch: run failed (exit ${code}); restart ${k}/${restarts} from ${save}\n`);
    program = withResume(program, save);
    code = await runOnce(line(program), workers, tensor);
  }
  return code;
}

/** The hosts, network and binding the flags give, checked here: the mpirun line of a rank program. */
function mpirunLine(f: LaunchFlags, n: number): (prog: string[]) => string[] {
  const { hostfile, iface: ifaceFlag } = f;
  if (hostfile !== undefined && !existsSync(hostfile)) throw new UsageError(`--hostfile ${hostfile}: no such file`);
  const local = hostfile === undefined || asUsage(() => allLocal(parseHostfile(readFileSync(hostfile, "utf8"), hostfile), hostname()));
  const iface = ifaceFlag === undefined ? undefined : asUsage(() => checkIface(ifaceFlag, networkInterfaces()));
  const env: string[] = Object.keys(process.env).filter((k) => k.startsWith("PIPEWRIGHT_"));
  if (f.timeout !== undefined) { process.env.PIPEWRIGHT_WATCHDOG = String(f.timeout); env.push("PIPEWRIGHT_WATCHDOG"); }
  if (spawnSync("mpirun", ["--version"]).error) throw new Error(`mpirun not found: install Open MPI with \`${MPI_INSTALL_HINT}\``);
  // Other hosts cannot be probed from here: in a container, assume theirs forbid single copy too.
  const container = existsSync("/.dockerenv") || existsSync("/run/.containerenv");
  const singleCopy = singleCopyWorks() && (local || !container);
  const extra = f["mpirun-args"]?.split(/\s+/).filter(Boolean) ?? [];
  return (prog) => {
    const a = asUsage(() => mpirunArgv({ ranks: n, hostfile, iface, local, cores: availableParallelism(), bind: f.bind,
      root: process.getuid?.() === 0, singleCopy, forward: [...new Set(env)], program: rankProgram(prog) }));
    return [a[0], ...extra, ...a.slice(1)];
  };
}
