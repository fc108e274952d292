// The process-wide MPI transport over the addon's communication thread. Messages are routed to a
// handler per (communicator, tag); `split` and `barrier` resolve when the communication thread
// reports them done. One per process (MPI is initialised once); every executor shares it.
import { hostMemory } from "../../tensor/host-arrays.js";
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
  /** Messages that overtook an earlier one (the two delivery paths race), by sequence number. */
  private readonly ahead = new Map<number, [number, number, number, ArrayBuffer]>();
  private nextSeq = 0;
  private nextId = 1;
  private finalized: (() => void) | null = null;
  /** performance.now() of the last message received (the watchdog's measure of liveness). */
  lastMessageAt = performance.now();
  /** Set by the first transport error; every later call throws it. */
  failure: Error | null = null;
  onError: (e: Error) => void = (e) => { throw e; };

  constructor(private readonly addon: MpiAddon) {
    const info = addon.init((kind, a, b, c, data, seq) => this.event(kind, a, b, c, data, seq));
    this.rank = info.rank;
    this.size = info.size;
    this.threadLevel = info.threadLevel;
  }

  private event(kind: MpiEventKind, a: number, b: number, c: number | string, data: ArrayBuffer | null, seq: number): void {
    if (kind === "message") this.inOrder(seq, a, b, c as number, data!);
    else if (kind === "done") {
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

  /**
   * Hands messages to their handlers in the order they completed, whichever path brought them.
   * Re-entrant: a handler may run actions whose blocking collectives call receive() (a pipeline
   * message that arrived through the event loop pumps the worker), so a message is counted as
   * handed over before its handler runs; otherwise the next one would wait for this handler, which
   * waits for it.
   */
  private inOrder(seq: number, comm: number, source: number, tag: number, data: ArrayBuffer): void {
    this.ahead.set(seq, [comm, source, tag, data]);
    for (let m = this.ahead.get(this.nextSeq); m; m = this.ahead.get(this.nextSeq)) {
      this.ahead.delete(this.nextSeq++);
      this.dispatch(...m);
    }
  }

  private dispatch(comm: number, source: number, tag: number, data: ArrayBuffer): void {
    this.lastMessageAt = performance.now();
    const key = `${comm}:${tag}`;
    const h = this.handlers.get(key);
    if (h) h(source, data);
    else { const q = this.early.get(key) ?? []; q.push([source, data]); this.early.set(key, q); }
  }

  /**
   * Polls on this thread and hands over what arrived now, without the event loop's hop (for a rank
   * that waits and has nothing else to do). Handlers run inside this call.
   */
  receive(): void {
    if (this.failure) return;
    for (const [comm, source, tag, data, seq] of this.addon.receive()) this.inOrder(seq, comm, source, tag, data);
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
    // Every array the project sends passes here; a device-resident (webgpu) array is a Proxy the
    // addon cannot read, so it gets the real memory, brought up to date.
    this.addon.send(comm, dest, tag, header, body instanceof Float32Array ? hostMemory(body) : body);
  }

  /** Between actions: lets transfers in flight advance without waiting for the communication thread's slice. */
  progress(): void { if (!this.failure) this.addon.progress(); }

  /**
   * What this thread does now, so the communication thread neither takes its core nor leaves a
   * message waiting: computes, waits for a message on the event loop (the communication thread
   * polls hot), or polls with `receive` itself.
   */
  threadState(state: "computing" | "waiting" | "polling"): void {
    this.addon.setJsState(state === "computing" ? 0 : state === "waiting" ? 1 : 2);
  }

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
