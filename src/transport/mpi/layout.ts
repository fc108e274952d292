// Rank layout of a job, Megatron-style: tensor-parallel rank innermost, then pipeline worker, then
// data-parallel replica: rank = (replica * W + worker) * T + tensor, so a stage's tensor-parallel ranks
// are neighbours (they share a host when the hostfile groups slots).
export interface RankLayout {
  tensor: number;
  workers: number;
  replicas: number;
}

export interface RankPosition { tensor: number; worker: number; replica: number }

export function worldSize(l: RankLayout): number { return l.tensor * l.workers * l.replicas; }

export function positionOf(rank: number, l: RankLayout): RankPosition {
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize(l)) {
    throw new Error(`rank ${rank} is outside the job (world size ${worldSize(l)} = ${l.tensor} x ${l.workers} x ${l.replicas})`);
  }
  return { tensor: rank % l.tensor, worker: Math.floor(rank / l.tensor) % l.workers, replica: Math.floor(rank / (l.tensor * l.workers)) };
}

export function rankOf(p: RankPosition, l: RankLayout): number {
  return (p.replica * l.workers + p.worker) * l.tensor + p.tensor;
}

/**
 * Colors and keys for MPI_Comm_split: the pipeline group (same replica and tensor rank, ordered by
 * worker), the data-parallel group (same worker and tensor rank, ordered by replica) and the
 * tensor-parallel group (same replica and worker, ordered by tensor rank).
 */
export function groupSplits(rank: number, l: RankLayout): { pipeline: [number, number]; data: [number, number]; tensor: [number, number] } {
  const p = positionOf(rank, l);
  return {
    pipeline: [p.replica * l.tensor + p.tensor, p.worker],
    data: [p.worker * l.tensor + p.tensor, p.replica],
    tensor: [p.replica * l.workers + p.worker, p.tensor],
  };
}

/** The job size a layout needs, as a sentence naming all three numbers (for a wrong -n). */
export function describeWorld(l: RankLayout): string {
  return `${l.workers} pipeline worker(s) x ${l.tensor} tensor-parallel rank(s) x ${l.replicas} replica(s) = ${worldSize(l)}`;
}
