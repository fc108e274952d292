// Loads the MPI addon (native/mpi, built by `npm ci` apart from the oneDNN addon; it is absent on a
// machine without Open MPI). A missing addon is an error that says what to install.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type MpiEventKind = "message" | "done" | "error" | "finalized";

/** The addon's functions (native/mpi/mpi_addon.cc). */
export interface MpiAddon {
  /** Starts the communication thread and MPI_Init_thread; events arrive on the JS thread. */
  /** `seq` numbers messages in the order they completed (they reach JS by two paths: events and `receive`). */
  init(onEvent: (kind: MpiEventKind, a: number, b: number, c: number | string, data: ArrayBuffer | null, seq: number) => void): { rank: number; size: number; threadLevel: string };
  /** Starts the send on the calling thread when MPI is thread-multiple (else queues it for the communication thread). */
  send(comm: number, dest: number, tag: number, header: Uint8Array, body?: ArrayBufferView): void;
  /** One poll of every outstanding operation on the calling thread (skipped while the communication thread polls). */
  progress(): void;
  /** One poll on the calling thread; the messages it completed, as [comm, source, tag, data, seq]. */
  receive(): [number, number, number, ArrayBuffer, number][];
  /** The JS thread computes (0: the communication thread backs off), waits on its event loop (1: it polls hot) or polls with `receive` itself (2: it stays idle). */
  setJsState(state: 0 | 1 | 2): void;
  listen(comm: number, tag: number): void;
  split(comm: number, color: number, key: number, id: number): void;
  barrier(comm: number, id: number): void;
  commInfo(comm: number): { rank: number; size: number };
  finalize(): void;
  abort(code: number): never;
  /** Whether this process may use cross-memory attach (needs no MPI initialisation). */
  singleCopyWorks(): boolean;
}

export const MPI_INSTALL_HINT = "apt-get install -y openmpi-bin libopenmpi-dev && npm rebuild pipewright (or: npm run build:mpi)";

/** The package root: the nearest ancestor directory holding pipewright's package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) || !existsSync(join(dir, "native"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the pipewright package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

export function mpiAddonPath(): string {
  return join(packageRoot(), "native", "mpi", "build", "Release", "pipewright_mpi.node");
}

export function loadMpiAddon(path = mpiAddonPath()): MpiAddon {
  if (!existsSync(path)) {
    throw new Error(`the MPI transport is not built (${path} is missing): Open MPI is needed for --executor processes and launch; install it with \`${MPI_INSTALL_HINT}\``);
  }
  try {
    return createRequire(import.meta.url)(path) as MpiAddon;
  } catch (e) {
    throw new Error(`the MPI addon ${path} failed to load (${(e as Error).message}); install Open MPI with \`${MPI_INSTALL_HINT}\``);
  }
}

/**
 * Whether shared-memory MPI on this host may move large messages by one copy: the process may call
 * process_vm_readv and, where Yama restricts ptrace, the scope still lets the ranks attach.
 */
export function singleCopyWorks(): boolean {
  let addon: MpiAddon;
  try { addon = loadMpiAddon(); } catch { return false; }
  if (!addon.singleCopyWorks()) return false;
  try { return Number(readFileSync("/proc/sys/kernel/yama/ptrace_scope", "utf8").trim()) <= 1; } catch { return true; }
}
