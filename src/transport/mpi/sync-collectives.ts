// Blocking collectives over an MPI communicator, for tensor parallelism: a tensor-parallel layer
// all-reduces inside its forward and backward, which cannot await. The calling thread polls MPI
// itself until the parts it needs have arrived; the caller must have put it in the "polling" state
// beforehand (a message the communication thread handed to the event loop could not be seen here);
// messages for other handlers (pipeline activations) that arrive meanwhile are handed to them as
// usual. The steps and the summation order are MpiCollectives' (allReduceSteps): the same bits.
import type { ReduceOp, SyncCollectives } from "../types.js";
import { allReduceSteps } from "./collectives.js";
import type { ControlMailbox } from "./mailbox.js";

export class MpiSyncCollectives implements SyncCollectives {
  readonly rank: number;
  readonly size: number;
  private aborted = false;

  constructor(private readonly box: ControlMailbox, private readonly timeoutMs = 600_000) {
    const info = box.mpi.commInfo(box.comm);
    this.rank = info.rank;
    this.size = info.size;
  }

  private takeSync(source: number, key: string): Float32Array {
    const { mpi } = this.box;
    const until = performance.now() + this.timeoutMs;
    for (;;) {
      const got = this.box.takeNow(source, key);
      if (got) return got.value as Float32Array;
      if (this.aborted) throw new Error(`tensor-parallel collective aborted while waiting for tensor rank ${source}`);
      if (mpi.failure) throw mpi.failure;
      if (performance.now() > until) throw new Error(`tensor-parallel collective: nothing from tensor rank ${source} for ${this.timeoutMs / 1000} s`);
      mpi.receive();
    }
  }

  allReduceSync(buf: Float32Array, op: ReduceOp = "sum"): void {
    const steps = allReduceSteps(this.box, buf, op);
    for (let want = steps.next(); !want.done; want = steps.next(this.takeSync(...want.value)));
  }

  broadcastSync(buf: Float32Array, root: number): void {
    if (this.size === 1) return;
    const key = this.box.nextKey("bcast-sync");
    if (this.rank === root) for (let r = 0; r < this.size; r++) { if (r !== root) this.box.post(r, key, buf.slice()); }
    else buf.set(this.takeSync(root, key));
  }

  barrierSync(): void { this.allReduceSync(new Float32Array(1)); }
  allReduce(buf: Float32Array, op?: ReduceOp): Promise<void> { this.allReduceSync(buf, op); return Promise.resolve(); }
  broadcast(buf: Float32Array, root: number): Promise<void> { this.broadcastSync(buf, root); return Promise.resolve(); }
  barrier(): Promise<void> { this.barrierSync(); return Promise.resolve(); }
  abort(): void { this.aborted = true; }
  close(): void {}
}
