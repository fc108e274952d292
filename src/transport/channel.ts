// Point-to-point messages between threads: one MessageChannel per pair of ranks. A message is a
// Float32Array plus a tag; its buffer is transferred (moved, no copy) when the sender says so, and a
// SharedArrayBuffer-backed array is shared by reference, so no message copies megabytes. Messages
// are matched by (sender, tag) in FIFO order, whatever order they arrive in.
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { checkRank, type PointToPoint } from "./types.js";

/** ports[r][s] = rank r's port to rank s (absent for s = r). Post ports[r] to rank r's thread. */
export type PortMesh = Record<number, MessagePort>[];

/** A full mesh of MessageChannels between `size` ranks. */
export function createPortMesh(size: number): PortMesh {
  if (!Number.isInteger(size) || size < 1) throw new Error(`group size must be a positive integer, got ${size}`);
  const ports: PortMesh = Array.from({ length: size }, () => ({}));
  for (let i = 0; i < size; i++) {
    for (let j = i + 1; j < size; j++) {
      const ch = new MessageChannel();
      ports[i][j] = ch.port1;
      ports[j][i] = ch.port2;
    }
  }
  return ports;
}

interface Wire { tag: string; data: Float32Array }
interface Waiter { resolve: (d: Float32Array) => void; reject: (e: Error) => void }

export class PortChannel implements PointToPoint {
  /** Messages that arrived before anyone asked for them, per "sender:tag". */
  private readonly inbox = new Map<string, Float32Array[]>();
  /** Receivers waiting, per "sender:tag". */
  private readonly waiting = new Map<string, Waiter[]>();
  private closed = false;

  constructor(readonly rank: number, readonly size: number, private readonly ports: Record<number, MessagePort>) {
    checkRank(rank, size, "port channel");
    for (const [peer, port] of Object.entries(ports)) {
      const from = Number(peer);
      checkRank(from, size, "port channel peer");
      port.on("message", (m: Wire) => this.arrive(from, m));
    }
  }

  send(to: number, tag: string, data: Float32Array, transfer = false): void {
    if (this.closed) throw new Error(`rank ${this.rank}: send on a closed channel`);
    checkRank(to, this.size, "send");
    if (to === this.rank) { this.arrive(to, { tag, data: transfer ? data : data.slice() }); return; }
    const port = this.ports[to];
    if (!port) throw new Error(`rank ${this.rank} has no port to rank ${to}`);
    const movable = transfer && data.buffer instanceof ArrayBuffer;
    port.postMessage({ tag, data } satisfies Wire, movable ? [data.buffer as ArrayBuffer] : []);
  }

  recv(from: number, tag: string): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new Error(`rank ${this.rank}: recv on a closed channel`));
    checkRank(from, this.size, "recv");
    const key = `${from}:${tag}`;
    const queued = this.inbox.get(key);
    if (queued && queued.length > 0) {
      const d = queued.shift()!;
      if (queued.length === 0) this.inbox.delete(key);
      return Promise.resolve(d);
    }
    return new Promise((resolve, reject) => {
      const w = this.waiting.get(key);
      if (w) w.push({ resolve, reject });
      else this.waiting.set(key, [{ resolve, reject }]);
    });
  }

  private arrive(from: number, m: Wire): void {
    const key = `${from}:${m.tag}`;
    const w = this.waiting.get(key);
    if (w && w.length > 0) {
      const { resolve } = w.shift()!;
      if (w.length === 0) this.waiting.delete(key);
      resolve(m.data);
      return;
    }
    const q = this.inbox.get(key);
    if (q) q.push(m.data);
    else this.inbox.set(key, [m.data]);
  }

  /** Closes every port (lets the thread's event loop end); receives still waiting reject instead of hanging. */
  close(): void {
    this.closed = true;
    for (const p of Object.values(this.ports)) p.close();
    for (const [key, ws] of this.waiting) {
      for (const w of ws) w.reject(new Error(`rank ${this.rank}: channel closed while waiting to receive '${key}' (sender:tag)`));
    }
    this.waiting.clear();
  }
}
