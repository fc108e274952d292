// `pipewright bench mpi`: the MPI transport's message figures, run under mpirun (or launch) on 2+
// ranks; rank 0 prints one row per measurement.
import { command, type CommandSpec } from "./args.js";
import { emit } from "./output.js";
import { benchMpi } from "../transport/mpi/bench.js";
import { launchEnv } from "../transport/mpi/env.js";
import { mpiTransport } from "../transport/mpi/transport.js";

const benchMpiCommand = {
  name: "bench mpi",
  summary: "Under `mpirun -n 2` (or `pipewright launch -n 2 -- bench mpi`): one-way p2p latency and bandwidth at 1 KB " +
    "and 4 MB between ranks 0 and 1 (half the median ping-pong round trip), a 4 MB fixed-order all-reduce over every rank, " +
    "and the CPU time rank 1 uses while it waits for a message (near zero: the communication thread sleeps).",
  flags: {
    iters: { type: "int", min: 5, default: 200, help: "round trips per size (4 MB: a quarter)", meta: "N" },
    idle: { type: "number", min: 0.1, default: 2, help: "seconds rank 1 waits in the idle-CPU row", meta: "S" },
    json: { type: "bool", help: "one JSON object per row" },
  },
  examples: ["pipewright launch -n 2 -- bench mpi", "mpirun -n 2 --mca btl self,tcp --mca btl_tcp_if_include lo pipewright bench mpi --json"],
} as const satisfies CommandSpec;

export const runBenchMpi = command(benchMpiCommand, async (f) => {
  if (!launchEnv()) throw new Error("bench mpi runs on 2+ MPI ranks; start it with `pipewright launch -n 2 -- bench mpi` or `mpirun -n 2 pipewright bench mpi`");
  const mpi = mpiTransport();
  const rows = await benchMpi(mpi, { iters: f.iters, idleSeconds: f.idle });
  for (const r of rows) {
    emit(f.json, r, r.bench === "idle-cpu" ? `idle-cpu   waiting ${(r.median_us / 1e6).toFixed(2)} s: ${r.cpu_percent}% of one core`
      : `${r.bench.padEnd(10)} ${String(r.ranks)} ranks ${(r.bytes >= 1 << 20 ? `${r.bytes >> 20} MB` : `${r.bytes >> 10} KB`).padStart(5)}  ${r.median_us.toFixed(1).padStart(9)} us  ${r.gb_s.toFixed(3)} GB/s`);
  }
  return 0;
});
