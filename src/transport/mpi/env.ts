// What a process can tell about its MPI job before starting MPI: launchers export the rank and size
// (Open MPI: OMPI_COMM_WORLD_*; PMIx under Slurm: PMIX_RANK; MPICH/Hydra: PMI_RANK).
export interface LaunchEnv { rank: number; size: number; localRank: number; localSize: number }

export function launchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv | null {
  const num = (...names: string[]): number | undefined => {
    for (const n of names) if (env[n] !== undefined && env[n] !== "") return Number(env[n]);
    return undefined;
  };
  const rank = num("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK");
  if (rank === undefined) return null;
  return {
    rank,
    size: num("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS") ?? 0,
    localRank: num("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID") ?? 0,
    localSize: num("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS") ?? 0,
  };
}

/** Rank 0 (or a process outside MPI) is the one that prints and writes files. */
export function isWriterRank(env: NodeJS.ProcessEnv = process.env): boolean {
  return (launchEnv(env)?.rank ?? 0) === 0;
}

export function notUnderMpiMessage(workers: number): string {
  return `--executor processes runs one MPI rank per worker, but this process was not started by MPI; launch it with ` +
    `\`pipewright launch -n ${workers} -- train ...\` or \`mpirun -n ${workers} pipewright train ... --executor processes\``;
}

/** torchrun-style variables for user code. */
export function exportTorchrunEnv(rank: number, size: number, localRank: number): void {
  process.env.RANK = String(rank);
  process.env.WORLD_SIZE = String(size);
  process.env.LOCAL_RANK = String(localRank);
}
