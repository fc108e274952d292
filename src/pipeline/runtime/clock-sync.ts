// Clock offsets of the ranks of a processes run against rank 0 (Cristian's algorithm), measured once
// when a traced executor starts so that every rank's records can be drawn on rank 0's time axis.
// Rank r sends a ping at t_send (its clock), rank 0 answers with its own time t0, and r reads the
// answer at t_recv: offset = t0 - (t_send + t_recv) / 2, good to half the round trip. Of several
// rounds the one with the shortest round trip wins (the least queueing on either side). Rank 0
// serves one rank at a time, so no rank's round trips wait behind another's.
import type { MpiTransport } from "../../transport/mpi/transport.js";
import type { MpiCollectives } from "../../transport/mpi/collectives.js";
import { epochNow, type ClockSync } from "./action-records.js";

/** A tag no other part of the project uses on the world communicator. */
const TAG_CLOCK = 11;
/** The world communicator's handle in the MPI transport (the addon's first). */
const WORLD = 0;

/** Arrivals on the clock tag, queued per source (a message may come before anyone waits for it). */
class ClockInbox {
  private readonly got = new Map<number, number[]>();
  private readonly waiting = new Map<number, (t: number) => void>();

  constructor(mpi: MpiTransport) {
    mpi.listen(WORLD, TAG_CLOCK, (source, data) => {
      const t = new Float64Array(data, 0, 1)[0];
      const w = this.waiting.get(source);
      if (w) { this.waiting.delete(source); w(t); return; }
      const q = this.got.get(source) ?? [];
      q.push(t);
      this.got.set(source, q);
    });
  }

  next(source: number): Promise<number> {
    const q = this.got.get(source);
    if (q?.length) return Promise.resolve(q.shift()!);
    return new Promise((resolve) => { this.waiting.set(source, resolve); });
  }
}

// One listener per process: a second executor of the same run must not replace it mid-exchange.
let inbox: ClockInbox | null = null;

function send(mpi: MpiTransport, dest: number, t: number): void {
  mpi.send(WORLD, dest, TAG_CLOCK, new Uint8Array(Float64Array.of(t).buffer));
}

/**
 * Collective over every rank of the job: each rank's clock against rank 0's, in rank order (rank 0's
 * own is offset 0, round trip 0).
 */
export async function syncClocks(mpi: MpiTransport, world: MpiCollectives, rounds = 8): Promise<ClockSync[]> {
  inbox ??= new ClockInbox(mpi);
  const box = inbox;
  let mine: ClockSync = { offsetMs: 0, rttMs: 0, rounds: 0 };
  if (mpi.rank === 0) {
    for (let r = 1; r < mpi.size; r++) {
      send(mpi, r, 0); // r's turn
      for (let i = 0; i < rounds; i++) {
        await box.next(r);
        send(mpi, r, epochNow());
      }
    }
  } else {
    await box.next(0);
    let best = Infinity;
    for (let i = 0; i < rounds; i++) {
      const tSend = epochNow();
      send(mpi, 0, tSend);
      const t0 = await box.next(0);
      const tRecv = epochNow();
      if (tRecv - tSend < best) {
        best = tRecv - tSend;
        mine = { offsetMs: t0 - (tSend + tRecv) / 2, rttMs: best, rounds };
      }
    }
  }
  return world.allGather(mine);
}
