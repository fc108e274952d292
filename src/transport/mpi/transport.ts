// The process-wide MPI transport over the addon's communication thread. Messages are routed to a
// handler per (communicator, tag); `split` and `barrier` resolve when the communication thread
// reports them done. One per process (MPI is initialised once); every executor shares it.
import { loadMpiAddon, type MpiAddon, type MpiEventKind } from "./addon.js";

export type MessageHandler = (source: number, data: ArrayBuffer) => void;

/** Tags the project uses on every communicator. */
export const TAG = { pipe: 1, ctrl: 2, floats: 3 } as const;

export class MpiTransport {
  readonly rank: number;
  readonly size: number;
  readonly threadLevel: string;
  private readonly handlers = new Map<string, MessageHandler>();
  private readonly early = new Map<string, [number, ArrayBuffer][]>();
  private readonly waits = new Map<number, (value: number) => void>();
  private nextId = 1;
  private finalized: (() => void) | null = null;
  /** performance.now() of the last message received (the watchdog's measure of liveness). */
  lastMessageAt = performance.now();
  /** Set by the first transport error; every later call throws it. */
  failure: Error | null = null;
  onError: (e: Error) => void = (e) => { throw e; };

  constructor(private readonly addon: MpiAddon) {
    const info = addon.init((kind, a, b, c, data) => this.event(kind, a, b, c, data));
    this.rank = info.rank;
    this.size = info.size;
    this.threadLevel = info.threadLevel;
  }

  private event(kind: MpiEventKind, a: number, b: number, c: number | string, data: ArrayBuffer | null): void {
    if (kind === "message") {
      this.lastMessageAt = performance.now();
      const key = `${a}:${c as number}`;
      const h = this.handlers.get(key);
      if (h) h(b, data!);
      else { const q = this.early.get(key) ?? []; q.push([b, data!]); this.early.set(key, q); }
    } else if (kind === "done") {
      const w = this.waits.get(a);
      this.waits.delete(a);
      w?.(b);
    } else if (kind === "error") {
      this.failure = new Error(`MPI on rank ${this.rank}: ${String(c)}`);
      this.onError(this.failure);
    } else {
      this.finalized?.();
    }
  }

  /** Receives every message with `tag` on `comm` (pre-posted: also those sent before this call). */
  listen(comm: number, tag: number, handler: MessageHandler): void {
    const key = `${comm}:${tag}`;
    const first = !this.handlers.has(key);
    this.handlers.set(key, handler);
    if (first) this.addon.listen(comm, tag);
    const q = this.early.get(key);
    this.early.delete(key);
    for (const [src, d] of q ?? []) handler(src, d);
  }

  send(comm: number, dest: number, tag: number, header: Uint8Array, body?: ArrayBufferView): void {
    if (this.failure) throw this.failure;
    this.addon.send(comm, dest, tag, header, body);
  }

  /** Between actions: lets transfers in flight advance without waiting for the communication thread's slice. */
  progress(): void { if (!this.failure) this.addon.progress(); }

  /** Whether this thread now waits for a message (the communication thread then polls hot). */
  waiting(on: boolean): void { this.addon.setWaiting(on); }

  private pending(start: (id: number) => void): Promise<number> {
    const id = this.nextId++;
    return new Promise((resolve) => { this.waits.set(id, resolve); start(id); });
  }

  /** MPI_Comm_split: the ranks with the same color form a communicator, ordered by key. */
  split(comm: number, color: number, key: number): Promise<number> {
    return this.pending((id) => this.addon.split(comm, color, key, id));
  }

  barrier(comm = 0): Promise<void> {
    return this.pending((id) => this.addon.barrier(comm, id)).then(() => undefined);
  }

  commInfo(comm: number): { rank: number; size: number } { return this.addon.commInfo(comm); }

  /** Sends still queued complete first; then MPI_Finalize and the communication thread ends. */
  finalize(): Promise<void> {
    return new Promise((resolve) => { this.finalized = resolve; this.addon.finalize(); });
  }

  abort(code: number): never { return this.addon.abort(code); }
}

let instance: MpiTransport | null = null;

/** The process's transport, started on first use (MPI_Init_thread). */
export function mpiTransport(): MpiTransport {
  if (!instance) instance = new MpiTransport(loadMpiAddon());
  return instance;
}

/** Whether this process started MPI (so it must finalize or abort before exiting). */
export function mpiStarted(): MpiTransport | null { return instance; }
