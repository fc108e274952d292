// Rank layout of a job, Megatron-style: tensor-parallel rank innermost, then pipeline worker, then
// data-parallel replica: rank = (replica * W + worker) * T + tensor. Tensor parallelism (T > 1) is
// not run yet; the layout leaves room for it so PTD-P needs no new numbering.
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
 * worker) and the data-parallel group (same worker and tensor rank, ordered by replica).
 */
export function groupSplits(rank: number, l: RankLayout): { pipeline: [number, number]; data: [number, number] } {
  const p = positionOf(rank, l);
  return {
    pipeline: [p.replica * l.tensor + p.tensor, p.worker],
    data: [p.worker * l.tensor + p.tensor, p.replica],
  };
}
