// Collectives over a communicator's control mailbox, in a fixed rank order so that the bits do not
// depend on MPI's size-dependent algorithm choice: all-reduce is a reduce-scatter (rank r sums part
// r of every rank's buffer in rank order, src/transport/reduce.ts) followed by an all-gather, the
// same rule as the threads transport.
import { partOf, reduceInOrder } from "../reduce.js";
import type { ReduceOp } from "../types.js";
import type { ControlMailbox } from "./mailbox.js";

/**
 * The fixed-order all-reduce of `buf` over the box's communicator as a sequence of takes: it yields
 * the (source, key) of each part it needs next and is resumed with that part, so a blocking driver
 * (sync-collectives.ts) and an awaiting one run the same steps, hence the same bits.
 */
export function* allReduceSteps(box: ControlMailbox, buf: Float32Array, op: ReduceOp): Generator<[number, string], void, Float32Array> {
  const { rank, size: R } = box.mpi.commInfo(box.comm);
  if (R === 1) return; // the sum (and mean) of one buffer is itself
  const key = box.nextKey("allreduce");
  for (let r = 0; r < R; r++) {
    if (r === rank) continue;
    const [a, b] = partOf(buf.length, r, R);
    box.post(r, `${key}/rs`, buf.slice(a, b));
  }
  const [a, b] = partOf(buf.length, rank, R);
  const sources: Float32Array[] = [];
  for (let r = 0; r < R; r++) sources.push(r === rank ? buf.slice(a, b) : yield [r, `${key}/rs`]);
  const mine = new Float32Array(b - a);
  reduceInOrder(sources, mine, 0, mine.length, op);
  for (let r = 0; r < R; r++) if (r !== rank) box.post(r, `${key}/ag`, mine);
  buf.set(mine, a);
  for (let r = 0; r < R; r++) {
    if (r === rank) continue;
    buf.set(yield [r, `${key}/ag`], partOf(buf.length, r, R)[0]);
  }
}

export class MpiCollectives {
  readonly rank: number;
  readonly size: number;

  constructor(private readonly box: ControlMailbox) {
    const info = box.mpi.commInfo(box.comm);
    this.rank = info.rank;
    this.size = info.size;
  }

  /** Every rank's value, in rank order. */
  async allGather<T>(value: T): Promise<T[]> {
    const key = this.box.nextKey("allgather");
    for (let r = 0; r < this.size; r++) if (r !== this.rank) this.box.post(r, key, value);
    const out: T[] = [];
    for (let r = 0; r < this.size; r++) out.push(r === this.rank ? value : await this.box.take<T>(r, key));
    return out;
  }

  /** The root's value on every rank. */
  async broadcast<T>(value: T | undefined, root: number): Promise<T> {
    const key = this.box.nextKey("bcast");
    if (this.rank === root) {
      for (let r = 0; r < this.size; r++) if (r !== root) this.box.post(r, key, value);
      return value as T;
    }
    return this.box.take<T>(root, key);
  }

  /** Element-wise sum (or mean) over ranks, in place, fixed rank order. */
  async allReduce(buf: Float32Array, op: ReduceOp = "sum"): Promise<void> {
    const steps = allReduceSteps(this.box, buf, op);
    for (let want = steps.next(); !want.done; want = steps.next(await this.box.take<Float32Array>(...want.value)));
  }

  async barrier(): Promise<void> { await this.box.mpi.barrier(this.box.comm); }
}
