// The transport interfaces: point-to-point messages and collectives between the members ("ranks") of
// a group of workers. Threads in one process implement them with MessagePorts and SharedArrayBuffers
// (channel.ts, shm-collectives.ts); a later ZeroMQ transport between processes or hosts implements
// the same interfaces, and can reuse p2p-collectives.ts for its collectives.
//
// Every collective reduces in a FIXED order (float32 sum in rank order 0, 1, ..., R-1; see
// reduce.ts), so the result is the same bits whatever the thread timing and whichever transport
// carries it.

export const REDUCE_OPS = ["sum", "mean"] as const;
/** "mean" = the rank-ordered sum divided by the group size. */
export type ReduceOp = (typeof REDUCE_OPS)[number];

/** Point-to-point messages of Float32Arrays, matched by (sender, tag); FIFO per (sender, tag). */
export interface PointToPoint {
  readonly rank: number;
  readonly size: number;
  /**
   * Sends `data` to rank `to`. With `transfer`, the buffer is moved (the sender must not use `data`
   * afterwards); a SharedArrayBuffer-backed array is shared, never copied.
   */
  send(to: number, tag: string, data: Float32Array, transfer?: boolean): void;
  /** The next message from `from` with `tag`. */
  recv(from: number, tag: string): Promise<Float32Array>;
  close(): void;
}

/** Collectives over every rank of the group; every rank calls them in the same order. */
export interface Collectives {
  readonly rank: number;
  readonly size: number;
  /** In place: every rank's `buf` becomes the rank-ordered reduction of all ranks' `buf`s. */
  allReduce(buf: Float32Array, op?: ReduceOp): Promise<void>;
  /** In place: every rank's `buf` becomes a copy of rank `root`'s. */
  broadcast(buf: Float32Array, root: number): Promise<void>;
  barrier(): Promise<void>;
  /**
   * Marks the group failed: every rank waiting in (or later entering) a collective throws a
   * TransportAbortedError instead of waiting for a rank that will never arrive.
   */
  abort(): void;
  close(): void;
}

/** Blocking variants, for code that cannot await (e.g. a hook inside a synchronous interpreter). */
export interface SyncCollectives extends Collectives {
  allReduceSync(buf: Float32Array, op?: ReduceOp): void;
  broadcastSync(buf: Float32Array, root: number): void;
  barrierSync(): void;
}

/** A collective stopped because the group was aborted (another rank failed). */
export class TransportAbortedError extends Error {
  constructor(readonly rank: number, readonly abortedBy: number) {
    super(`rank ${rank}: collective aborted${abortedBy >= 0 ? ` by rank ${abortedBy}` : " by the coordinator"} (another member of the group failed)`);
    this.name = "TransportAbortedError";
  }
}

/**
 * A worker's error as plain data for its coordinator: `abortedBy` is set when the error is only the
 * consequence of rank `abortedBy` aborting the group (the coordinator then waits for that rank's own error).
 */
export function describeFailure(e: unknown): { message: string; stack?: string; abortedBy?: number } {
  const err = e instanceof Error ? e : new Error(String(e));
  // The abort may arrive wrapped (a pipeline action's error keeps its cause).
  let root: unknown = err;
  while (root instanceof Error && !(root instanceof TransportAbortedError) && root.cause !== undefined) root = root.cause;
  const abortedBy = root instanceof TransportAbortedError ? root.abortedBy : undefined;
  return { message: err.message, stack: err.stack, abortedBy };
}

/** A collective waited longer than its timeout for the other ranks. */
export class TransportTimeoutError extends Error {
  constructor(readonly rank: number, what: string, ms: number) {
    super(`rank ${rank}: ${what} timed out after ${ms} ms waiting for the other ranks`);
    this.name = "TransportTimeoutError";
  }
}

export function checkRank(rank: number, size: number, what: string): void {
  if (!Number.isInteger(rank) || rank < 0 || rank >= size) {
    throw new Error(`${what}: rank ${rank} is not in the group; valid: 0..${size - 1}`);
  }
}

export function checkReduceOp(op: string): asserts op is ReduceOp {
  if (!(REDUCE_OPS as readonly string[]).includes(op)) throw new Error(`unknown reduce op '${op}'; valid: ${REDUCE_OPS.join(", ")}`);
}
