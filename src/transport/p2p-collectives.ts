// Collectives over any PointToPoint transport (MessagePorts today, ZeroMQ between processes later):
// gather to rank 0, reduce there with the same rank-ordered kernel as the shared-memory collectives
// (so both give the same bits), send the result back. Simple and O(R) messages; meant for transports
// without shared memory, where the wire, not the arithmetic, is the cost.
import { reduceInOrder } from "./reduce.js";
import { checkRank, checkReduceOp, TransportAbortedError, type Collectives, type PointToPoint, type ReduceOp } from "./types.js";

export class P2PCollectives implements Collectives {
  readonly rank: number;
  readonly size: number;
  /** Sequence number of the next collective: tags never mix two collectives' messages. */
  private seq = 0;
  private aborted = false;

  constructor(private readonly p2p: PointToPoint) {
    this.rank = p2p.rank;
    this.size = p2p.size;
  }

  async allReduce(buf: Float32Array, op: ReduceOp = "sum"): Promise<void> {
    checkReduceOp(op);
    this.check();
    const tag = `ar${this.seq++}`;
    if (this.rank === 0) {
      const parts: Float32Array[] = [buf];
      for (let r = 1; r < this.size; r++) {
        const d = await this.p2p.recv(r, tag);
        if (d.length !== buf.length) throw new Error(`allReduce: rank ${r} sent ${d.length} elements, rank 0 has ${buf.length}`);
        parts.push(d);
      }
      const out = new Float32Array(buf.length);
      reduceInOrder(parts, out, 0, buf.length, op);
      buf.set(out);
      for (let r = 1; r < this.size; r++) this.p2p.send(r, tag, out.slice(), true);
    } else {
      this.p2p.send(0, tag, buf.slice(), true);
      buf.set(await this.p2p.recv(0, tag));
    }
  }

  async broadcast(buf: Float32Array, root: number): Promise<void> {
    checkRank(root, this.size, "broadcast root");
    this.check();
    const tag = `bc${this.seq++}`;
    if (this.rank === root) {
      for (let r = 0; r < this.size; r++) if (r !== root) this.p2p.send(r, tag, buf.slice(), true);
    } else {
      const d = await this.p2p.recv(root, tag);
      if (d.length !== buf.length) throw new Error(`broadcast: root ${root} sent ${d.length} elements, rank ${this.rank} expects ${buf.length}`);
      buf.set(d);
    }
  }

  barrier(): Promise<void> { return this.allReduce(new Float32Array(1)); }

  abort(): void { this.aborted = true; }

  private check(): void { if (this.aborted) throw new TransportAbortedError(this.rank, this.rank); }

  close(): void { this.p2p.close(); }
}
