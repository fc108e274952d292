/** A checkpoint that cannot be written or read as asked (names the file and what is wrong). */
export class CheckpointError extends Error {}
