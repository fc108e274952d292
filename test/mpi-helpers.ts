// Running the CLI under mpirun from tests: the environment root needs, oversubscription on few
// cores, and the transports (shared memory "vader", or TCP restricted to loopback). Tests skip with
// the reason when Open MPI or the MPI addon is missing.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { mpiAddonPath } from "../src/transport/mpi/addon.js";
import { SEAM_NODE_OPTIONS } from "./seam-preload.js";

export const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

export const MPI_ENV = { OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" };

/** Why MPI tests cannot run here, or false when they can. */
export function mpiSkipReason(): string | false {
  const r = spawnSync("mpirun", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return "mpirun not found (apt-get install -y openmpi-bin libopenmpi-dev)";
  if (!existsSync(mpiAddonPath())) return `MPI addon not built (${mpiAddonPath()}; npm run build:mpi)`;
  return false;
}

export type Btl = "vader" | "tcp";

export function mpirunArgs(n: number, btl: Btl): string[] {
  // Out-of-band (launch) traffic stays on loopback too: other tests add and remove interfaces.
  const net = btl === "tcp"
    ? ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo"]
    : ["--mca", "btl", "self,vader", "--mca", "oob_tcp_if_include", "lo"];
  return ["-n", String(n), "--oversubscribe", "--bind-to", "none", ...net];
}

export interface RunResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; seconds: number }

/** Runs `pipewright <args>` on n ranks; `onStderr` sees stderr as it arrives (with the child). */
export function runMpi(n: number, btl: Btl, args: string[], opts: { env?: Record<string, string>; timeoutMs?: number;
  onStderr?: (text: string, pid: number) => void } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn("mpirun", [...mpirunArgs(n, btl), process.execPath, MAIN, ...args],
      // Every rank preloads the test seam (faults and crash points named in opts.env).
      { env: { ...process.env, ...MPI_ENV, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} ${SEAM_NODE_OPTIONS}`.trim(), ...opts.env } });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); opts.onStderr?.(stderr, child.pid!); });
    // A hang detector, not a timing threshold: a run that never ends fails the test.
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

/** The PIDs of mpirun's rank processes, by MPI rank (read from each child's environment). */
export function rankPids(mpirunPid: number): Map<number, number> {
  const out = new Map<number, number>();
  const r = spawnSync("pgrep", ["-P", String(mpirunPid)], { encoding: "utf8" });
  for (const line of r.stdout.split("\n").filter(Boolean)) {
    const pid = Number(line);
    try {
      const env = spawnSync("cat", [`/proc/${pid}/environ`], { encoding: "utf8" }).stdout.split("\0");
      const rank = env.find((e) => e.startsWith("OMPI_COMM_WORLD_RANK="));
      if (rank) out.set(Number(rank.split("=")[1]), pid);
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/**
 * Runs `pipewright <args>` on 2 ranks with the watchdog at `watchdog` seconds and SIGSTOPs rank 1
 * once stderr matches `after`; returns the run and the seconds from the stop to the job's end.
 */
export async function runAndStopRank1(args: string[], after: RegExp, watchdog = 2): Promise<RunResult & { stopped: boolean; secondsAfterStop: number }> {
  let stoppedAt = 0;
  const r = await runMpi(2, "vader", args, {
    env: { PIPEWRIGHT_WATCHDOG: String(watchdog) },
    timeoutMs: 120_000,
    onStderr: (text, pid) => {
      if (stoppedAt || !after.test(text)) return;
      const victim = rankPids(pid).get(1);
      if (victim === undefined) return;
      stoppedAt = performance.now();
      process.kill(victim, "SIGSTOP");
    },
  });
  return { ...r, stopped: stoppedAt > 0, secondsAfterStop: (performance.now() - stoppedAt) / 1000 };
}

/** Two checkpoints hold the same bits: weights (in the same order), optimizer state and its tensors, step and epoch. */
export function assertSameCheckpoint(a: string, b: string): void {
  const x = loadCheckpoint(a), y = loadCheckpoint(b);
  assert.deepEqual([...x.model.keys()], [...y.model.keys()]);
  for (const [k, t] of x.model) assert.deepEqual(Buffer.from(y.model.get(k)!.data.buffer), Buffer.from(t.data.buffer), `weights ${k} differ`);
  assert.deepEqual(JSON.stringify(x.optimizer), JSON.stringify(y.optimizer), "optimizer state differs");
  for (const [k, t] of x.optimizer!.tensors) assert.deepEqual(Buffer.from(y.optimizer!.tensors.get(k)!.data.buffer), Buffer.from(t.data.buffer), `optimizer ${k} differs`);
  assert.deepEqual([x.step, x.epoch], [y.step, y.epoch]);
}
