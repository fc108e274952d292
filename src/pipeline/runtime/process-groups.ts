// The MPI communicators of a processes run, made once per process and shared by every executor of
// the run (a warm-up executor and the one after it). Ranks are laid out Megatron-style
// (src/transport/mpi/layout.ts): rank = (replica * W + worker) * T + tensor.
//   pipeline group: the W workers of one replica and tensor rank, ordered by worker (activations, gradients)
//   data group:     the R replicas of one worker and tensor rank, ordered by replica (gradient all-reduce)
//   tensor group:   the T tensor-parallel ranks of one worker (blocking all-reduces inside the layers)
//   world:          every rank (metrics of a step, weights for evaluation and checkpoints)
import { ControlMailbox } from "../../transport/mpi/mailbox.js";
import { MpiCollectives } from "../../transport/mpi/collectives.js";
import { exportTorchrunEnv, launchEnv, notUnderMpiMessage } from "../../transport/mpi/env.js";
import { describeWorld, groupSplits, positionOf, worldSize, type RankLayout, type RankPosition } from "../../transport/mpi/layout.js";
import { MpiSyncCollectives } from "../../transport/mpi/sync-collectives.js";
import { mpiTransport, type MpiTransport } from "../../transport/mpi/transport.js";
import { watchdogSeconds } from "../../transport/mpi/watchdog.js";

export interface Groups {
  mpi: MpiTransport;
  layout: RankLayout;
  /** This rank's worker and replica. */
  at: RankPosition;
  /** Pipeline communicator (ranks = worker indices) and its collectives. */
  pipeComm: number;
  pipe: MpiCollectives;
  /** Data-parallel collectives (ranks = replica indices). */
  data: MpiCollectives;
  /** Tensor-parallel collectives (ranks = tensor ranks): awaiting ones and the layers' blocking ones. */
  tensor: MpiCollectives;
  tensorSync: MpiSyncCollectives;
  world: MpiCollectives;
  /** How this rank names itself in a failure line (default: its replica and worker where there are several). */
  where?: string;
}

let groups: Promise<Groups> | null = null;
let made: RankLayout | null = null;

export function startGroups(workers: number, replicas = 1, tensor = 1): Promise<Groups> {
  const layout: RankLayout = { tensor, workers, replicas };
  if (!launchEnv()) throw new Error(notUnderMpiMessage(worldSize(layout)));
  if (made && (made.workers !== workers || made.replicas !== replicas || made.tensor !== tensor)) {
    throw new Error(`this process already runs ${describeWorld(made)}; it cannot change to ${describeWorld(layout)}`);
  }
  made = layout;
  groups ??= (async () => {
    const mpi = mpiTransport();
    if (mpi.size !== worldSize(layout)) {
      throw new Error(`the job has ${mpi.size} MPI rank(s) but the run needs ${describeWorld(layout)}; start it with -n ${worldSize(layout)}`);
    }
    exportTorchrunEnv(mpi.rank, mpi.size, launchEnv()?.localRank ?? 0);
    return (await layoutGroups(mpi, layout))!;
  })();
  return groups;
}

/**
 * Rank 0's value on every rank, for what must agree but is measured (e.g. per-layer times that
 * choose a partition): each rank measuring its own would cut the model differently.
 */
export async function agreeOnRank0<T>(value: T, workers: number, replicas = 1, tensor = 1): Promise<T> {
  const g = await startGroups(workers, replicas, tensor);
  return g.world.broadcast(g.mpi.rank === 0 ? value : undefined, 0);
}

/**
 * The communicators of `layout` over the job's first worldSize(layout) ranks; a rank beyond them
 * (a layout that does not fill the job) gets null. Collective over every rank of the job, in order.
 */
export async function layoutGroups(mpi: MpiTransport, layout: RankLayout, where?: (at: RankPosition) => string): Promise<Groups | null> {
  const active = mpi.rank < worldSize(layout);
  // An idle rank still takes part in every split, with a color of its own.
  const own: [number, number] = [worldSize(layout) + mpi.rank, 0];
  const s = active ? groupSplits(mpi.rank, layout) : { pipeline: own, data: own, tensor: own };
  const pipeComm = await mpi.split(0, s.pipeline[0], s.pipeline[1]);
  const dataComm = await mpi.split(0, s.data[0], s.data[1]);
  const tensorComm = await mpi.split(0, s.tensor[0], s.tensor[1]);
  const worldComm = await mpi.split(0, active ? 0 : 1, mpi.rank);
  if (!active) return null;
  const tensorBox = new ControlMailbox(mpi, tensorComm);
  const at = positionOf(mpi.rank, layout);
  return {
    mpi, layout, at, pipeComm,
    pipe: new MpiCollectives(new ControlMailbox(mpi, pipeComm)),
    data: new MpiCollectives(new ControlMailbox(mpi, dataComm)),
    tensor: new MpiCollectives(tensorBox),
    // A rank spinning inside a collective runs no timers, so its watchdog is this timeout.
    tensorSync: new MpiSyncCollectives(tensorBox, watchdogSeconds() * 1000 || undefined),
    world: new MpiCollectives(new ControlMailbox(mpi, worldComm)),
    ...(where ? { where: where(at) } : {}),
  };
}
