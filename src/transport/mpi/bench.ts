// Message benchmarks of the MPI transport between ranks 0 and 1 (run under mpirun -n 2 or more):
// point-to-point ping-pong (one-way latency = half the median round trip; bandwidth = bytes over
// that), the fixed-order all-reduce over every rank, and the CPU a rank uses while it waits for a
// message (the communication thread must sleep, not spin).
import { MpiCollectives } from "./collectives.js";
import { ControlMailbox } from "./mailbox.js";
import type { MpiTransport } from "./transport.js";
import { medianUpper } from "../../util/stats.js";

const TAG_BENCH = 7;

export interface MpiBenchRow { bench: "p2p" | "allreduce" | "idle-cpu"; ranks: number; bytes: number; iters: number; median_us: number; gb_s: number; cpu_percent?: number }

/**
 * The bench messages on `comm`, as a queue: a message can arrive before this rank waits for it (the
 * peer runs ahead after a barrier or between rounds), so arrivals are counted, never dropped. One
 * listener per communicator for the whole benchmark.
 */
function benchInbox(mpi: MpiTransport, comm: number): () => Promise<void> {
  let waiting: (() => void) | null = null, early = 0;
  mpi.listen(comm, TAG_BENCH, () => { const w = waiting; waiting = null; if (w) w(); else early++; });
  return () => new Promise((r) => { if (early > 0) { early--; r(); } else waiting = r; });
}

/** Round trips of `bytes` between ranks 0 and 1; other ranks only take part in the collectives. */
async function pingPong(mpi: MpiTransport, comm: number, next: () => Promise<void>, bytes: number, iters: number): Promise<number[]> {
  const body = new Uint8Array(bytes);
  const times: number[] = [];
  const header = new Uint8Array(0);
  const me = mpi.commInfo(comm).rank;
  for (let i = 0; i < iters; i++) {
    if (me === 0) {
      const got = next();
      const t0 = performance.now();
      mpi.send(comm, 1, TAG_BENCH, header, body);
      mpi.threadState("waiting");
      await got;
      mpi.threadState("computing");
      times.push((performance.now() - t0) / 1000);
    } else if (me === 1) {
      mpi.threadState("waiting");
      await next();
      mpi.threadState("computing");
      mpi.send(comm, 0, TAG_BENCH, header, body);
    }
  }
  return times;
}

/** Collective on `comm`: median one-way seconds of a `bytes` message between its ranks 0 and 1. */
export async function oneWayLatency(mpi: MpiTransport, comm: number, bytes: number, iters = 50): Promise<number> {
  const next = benchInbox(mpi, comm);
  await pingPong(mpi, comm, next, bytes, 10);
  const t = await pingPong(mpi, comm, next, bytes, iters);
  return mpi.commInfo(comm).rank === 0 ? medianUpper(t) / 2 : 0;
}

export async function benchMpi(mpi: MpiTransport, opts: { iters: number; idleSeconds: number }): Promise<MpiBenchRow[]> {
  if (mpi.size < 2) throw new Error(`bench mpi needs at least 2 ranks, got ${mpi.size}; run it under \`mpirun -n 2\` or \`pipewright launch -n 2 -- bench mpi\``);
  const comm = await mpi.split(0, 0, mpi.rank);
  const coll = new MpiCollectives(new ControlMailbox(mpi, comm));
  const rows: MpiBenchRow[] = [];
  const next = benchInbox(mpi, comm);
  for (const bytes of [1 << 10, 4 << 20]) {
    const iters = bytes > 1 << 20 ? Math.max(5, opts.iters >> 2) : opts.iters;
    await pingPong(mpi, comm, next, bytes, Math.min(10, iters)); // warm-up
    const t = await pingPong(mpi, comm, next, bytes, iters);
    await coll.barrier();
    if (mpi.rank === 0) {
      const oneWay = medianUpper(t) / 2;
      rows.push({ bench: "p2p", ranks: 2, bytes, iters, median_us: Number((oneWay * 1e6).toFixed(1)), gb_s: Number((bytes / oneWay / 1e9).toFixed(3)) });
    }
  }
  const buf = new Float32Array(1 << 20); // 4 MB
  const times: number[] = [];
  for (let i = 0; i < Math.max(5, opts.iters >> 2) + 3; i++) {
    buf.fill(1);
    const t0 = performance.now();
    await coll.allReduce(buf);
    if (i >= 3) times.push((performance.now() - t0) / 1000);
  }
  if (mpi.rank === 0) rows.push({ bench: "allreduce", ranks: mpi.size, bytes: buf.byteLength, iters: times.length,
    median_us: Number((medianUpper(times) * 1e6).toFixed(1)), gb_s: Number((buf.byteLength / medianUpper(times) / 1e9).toFixed(3)) });
  rows.push(...await idleCpu(mpi, coll, opts.idleSeconds));
  return rows;
}

/** Rank 1 waits `seconds` for rank 0's message; its process CPU time over that wait. */
async function idleCpu(mpi: MpiTransport, coll: MpiCollectives, seconds: number): Promise<MpiBenchRow[]> {
  let result: MpiBenchRow[] = [];
  if (mpi.rank === 0) {
    await new Promise((r) => setTimeout(r, seconds * 1000));
    await coll.broadcast("wake", 0);
    result = [await coll.broadcast<MpiBenchRow>(undefined, 1)];
  } else {
    const c0 = process.cpuUsage(), t0 = performance.now();
    await coll.broadcast<string>(undefined, 0);
    const c = process.cpuUsage(c0), wall = (performance.now() - t0) / 1000;
    const row: MpiBenchRow = { bench: "idle-cpu", ranks: 2, bytes: 0, iters: 1, median_us: Number((wall * 1e6).toFixed(0)), gb_s: 0,
      cpu_percent: Number(((c.user + c.system) / 1e6 / wall * 100).toFixed(2)) };
    await coll.broadcast(mpi.rank === 1 ? row : undefined, 1);
  }
  return mpi.rank === 0 ? result : [];
}
