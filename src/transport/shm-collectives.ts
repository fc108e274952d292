// Collectives between threads of one process over shared memory: no message carries tensor data.
//
// A group owns one SharedArrayBuffer of R + 1 float32 regions of `capacity` elements ("slots" 0..R-1,
// one per rank, and a "result" region) and a small Int32Array of control words (barrier count,
// barrier generation, abort flag). allReduce of a buffer, per piece of at most `capacity` elements:
//   1. every rank copies its piece into its own slot                                  (local memcpy)
//   2. barrier
//   3. rank r reduces part r of the piece (partOf) from all slots into "result", in rank order
//   4. barrier
//   5. every rank copies "result" into its buffer
// The next collective's first barrier guarantees nobody still reads "result" when it is rewritten.
// Each element is reduced by exactly one rank with the fixed order of reduce.ts, so the bits never
// depend on timing. Step 3 spreads the arithmetic over all ranks (a reduce-scatter + all-gather).
//
// Barriers are sense-counting (count + generation) on Atomics: the synchronous variant blocks the
// thread in Atomics.wait (worker threads only), the asynchronous one awaits Atomics.waitAsync. Waits
// are sliced (WAIT_SLICE_MS) so an abort or a timeout is noticed within a slice even without notify.
import {
  checkRank, checkReduceOp, TransportAbortedError, TransportTimeoutError, type ReduceOp, type SyncCollectives,
} from "./types.js";
import { partOf, reduceInOrder } from "./reduce.js";

const ARRIVED = 0;
const GENERATION = 1;
/** 0 = running; k + 1 = aborted by rank k; COORDINATOR = aborted from outside the group. */
const ABORT = 2;
const CONTROL_WORDS = 4;
const COORDINATOR = 1 << 30;
const WAIT_SLICE_MS = 50;
/** Polls of the generation word before sleeping in Atomics.wait (a few microseconds). */
const SPIN = 2000;

/** Atomics.waitAsync (ES2024; in Node since 16) is not in the ES2022 lib this project compiles against. */
type WaitAsync = (a: Int32Array, index: number, value: number, timeoutMs: number) =>
  { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<"ok" | "timed-out"> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** Everything a rank needs to join the group; plain data that can be posted to a worker (SABs are shared). */
export interface ShmGroupHandle {
  size: number;
  /** Elements per slot: larger buffers are reduced in pieces of this many. */
  capacity: number;
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

/** Allocates a group of `size` ranks with slots of `capacity` float32 elements (default 1 Mi = 4 MB). */
export function createShmGroup(size: number, capacity = 1 << 20): ShmGroupHandle {
  if (!Number.isInteger(size) || size < 1) throw new Error(`group size must be a positive integer, got ${size}`);
  if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`slot capacity must be a positive integer number of elements, got ${capacity}`);
  return {
    size,
    capacity,
    control: new SharedArrayBuffer(CONTROL_WORDS * 4),
    data: new SharedArrayBuffer((size + 1) * capacity * 4),
  };
}

/** Aborts a group from outside it (e.g. the thread that started the workers, on a failure). */
export function abortShmGroup(handle: ShmGroupHandle): void {
  const ctrl = new Int32Array(handle.control);
  Atomics.compareExchange(ctrl, ABORT, 0, COORDINATOR);
  Atomics.notify(ctrl, GENERATION);
}

export interface ShmOptions {
  /** A collective waiting longer than this for the others throws TransportTimeoutError (default 60 s). */
  timeoutMs?: number;
}

export class ShmCollectives implements SyncCollectives {
  readonly size: number;
  private readonly ctrl: Int32Array;
  private readonly slots: Float32Array[];
  private readonly result: Float32Array;
  private readonly capacity: number;
  private readonly timeoutMs: number;
  private closed = false;

  constructor(readonly handle: ShmGroupHandle, readonly rank: number, opts: ShmOptions = {}) {
    checkRank(rank, handle.size, "shm collectives");
    this.size = handle.size;
    this.capacity = handle.capacity;
    this.ctrl = new Int32Array(handle.control);
    const c = handle.capacity;
    this.slots = Array.from({ length: handle.size }, (_, r) => new Float32Array(handle.data, r * c * 4, c));
    this.result = new Float32Array(handle.data, handle.size * c * 4, c);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /** This rank's slot: a caller may write its contribution here directly and use allReduceSlot. */
  get slot(): Float32Array { return this.slots[this.rank]; }

  allReduceSync(buf: Float32Array, op: ReduceOp = "sum"): void { this.runSync(this.allReduceSteps(buf, op)); }
  /**
   * All-reduce of the first `n` elements every rank has already written into its own `slot` (saves
   * the copy into the slot). Returns a view of the reduced values, valid until the next collective.
   */
  allReduceSlotSync(n: number, op: ReduceOp = "sum"): Float32Array {
    this.runSync(this.slotSteps(n, op));
    return this.result.subarray(0, n);
  }
  async allReduceSlot(n: number, op: ReduceOp = "sum"): Promise<Float32Array> {
    await this.runAsync(this.slotSteps(n, op));
    return this.result.subarray(0, n);
  }
  broadcastSync(buf: Float32Array, root: number): void { this.runSync(this.broadcastSteps(buf, root)); }
  barrierSync(): void { this.runSync(this.barrierSteps()); }

  allReduce(buf: Float32Array, op: ReduceOp = "sum"): Promise<void> { return this.runAsync(this.allReduceSteps(buf, op)); }
  broadcast(buf: Float32Array, root: number): Promise<void> { return this.runAsync(this.broadcastSteps(buf, root)); }
  barrier(): Promise<void> { return this.runAsync(this.barrierSteps()); }

  abort(): void {
    Atomics.compareExchange(this.ctrl, ABORT, 0, this.rank + 1);
    Atomics.notify(this.ctrl, GENERATION);
  }

  /** True once any rank (or the coordinator) aborted the group. */
  get aborted(): boolean { return Atomics.load(this.ctrl, ABORT) !== 0; }

  close(): void { this.closed = true; }

  // The collectives as step sequences: each `yield` is a barrier, run blocking or awaited.

  private *allReduceSteps(buf: Float32Array, op: ReduceOp): Generator<string> {
    checkReduceOp(op);
    for (let off = 0; off < buf.length || (off === 0 && buf.length === 0); off += this.capacity) {
      const n = Math.min(this.capacity, buf.length - off);
      this.slots[this.rank].set(buf.subarray(off, off + n));
      yield "allReduce";
      const [a, b] = partOf(n, this.rank, this.size);
      reduceInOrder(this.slots, this.result, a, b, op);
      yield "allReduce";
      buf.set(this.result.subarray(0, n), off);
      if (buf.length === 0) break;
    }
  }

  private *slotSteps(n: number, op: ReduceOp): Generator<string> {
    checkReduceOp(op);
    if (!Number.isInteger(n) || n < 0 || n > this.capacity) throw new Error(`allReduceSlot: ${n} elements do not fit a slot of ${this.capacity}`);
    yield "allReduce";
    const [a, b] = partOf(n, this.rank, this.size);
    reduceInOrder(this.slots, this.result, a, b, op);
    yield "allReduce";
  }

  private *broadcastSteps(buf: Float32Array, root: number): Generator<string> {
    checkRank(root, this.size, "broadcast root");
    for (let off = 0; off < buf.length || (off === 0 && buf.length === 0); off += this.capacity) {
      const n = Math.min(this.capacity, buf.length - off);
      // The leading barrier: nobody still reads "result" from the previous collective.
      yield "broadcast";
      if (this.rank === root) this.result.set(buf.subarray(off, off + n));
      yield "broadcast";
      if (this.rank !== root) buf.set(this.result.subarray(0, n), off);
      if (buf.length === 0) break;
    }
  }

  private *barrierSteps(): Generator<string> { yield "barrier"; }

  private runSync(steps: Generator<string>): void {
    for (const what of steps) this.arriveSync(what);
  }

  private async runAsync(steps: Generator<string>): Promise<void> {
    for (const what of steps) await this.arriveAsync(what);
  }

  private checkState(): void {
    if (this.closed) throw new Error(`rank ${this.rank}: collectives used after close()`);
    const a = Atomics.load(this.ctrl, ABORT);
    if (a !== 0) throw new TransportAbortedError(this.rank, a === COORDINATOR ? -1 : a - 1);
  }

  /** Arrives at the barrier; returns the generation to wait on, or null when this rank completed it. */
  private arrive(): number | null {
    this.checkState();
    const gen = Atomics.load(this.ctrl, GENERATION);
    if (Atomics.add(this.ctrl, ARRIVED, 1) === this.size - 1) {
      Atomics.store(this.ctrl, ARRIVED, 0);
      Atomics.add(this.ctrl, GENERATION, 1);
      Atomics.notify(this.ctrl, GENERATION);
      return null;
    }
    return gen;
  }

  private arriveSync(what: string): void {
    const gen = this.arrive();
    if (gen === null) return;
    // Spin briefly first: when the others are running on other cores they arrive within
    // microseconds, and a futex sleep + wake costs tens of them.
    for (let i = 0; i < SPIN && Atomics.load(this.ctrl, GENERATION) === gen; i++);
    const deadline = performance.now() + this.timeoutMs;
    while (Atomics.load(this.ctrl, GENERATION) === gen) {
      this.checkState();
      const left = deadline - performance.now();
      if (left <= 0) throw new TransportTimeoutError(this.rank, what, this.timeoutMs);
      Atomics.wait(this.ctrl, GENERATION, gen, Math.min(WAIT_SLICE_MS, left));
    }
    this.checkState();
  }

  private async arriveAsync(what: string): Promise<void> {
    const gen = this.arrive();
    if (gen === null) return;
    const deadline = performance.now() + this.timeoutMs;
    while (Atomics.load(this.ctrl, GENERATION) === gen) {
      this.checkState();
      const left = deadline - performance.now();
      if (left <= 0) throw new TransportTimeoutError(this.rank, what, this.timeoutMs);
      const w = waitAsync(this.ctrl, GENERATION, gen, Math.min(WAIT_SLICE_MS, left));
      if (w.async) await w.value;
    }
    this.checkState();
  }
}
