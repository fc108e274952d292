// A coordinator's side of a group of worker threads that collect in shared memory, and the workers'
// side of its failure protocol (used by pipeline/runtime/threads.ts and parallel/tp-runner.ts).
//
// - The coordinator waits for one reply of a given type from every worker (one call at a time).
// - The first failure (a worker's error message, an uncaught error, an unexpected exit or reply)
//   becomes the run's failure: the shm groups are aborted (peers blocked in a collective stop), the
//   pending call rejects, and every thread is asked to leave (see shutdown.ts).
// - A worker's error that is only the consequence of a peer aborting the group (`abortedBy`, see
//   describeFailure) waits CAUSE_GRACE_MS for the root cause, which another thread posts, possibly later.
// - Between calls the threads are unref()'d, so an idle group never keeps the process alive (a
//   program that forgets close() still ends); a call ref()s them until its replies are in, and
//   close() until every thread has ended.
import type { Worker } from "node:worker_threads";
import { abortShmGroup, type ShmGroupHandle } from "./shm-collectives.js";
import { shutdownWorkers } from "./shutdown.js";
import { describeFailure } from "./types.js";

/** A worker's failure as posted to its coordinator (describeFailure's result). */
export type WorkerFailureReport = ReturnType<typeof describeFailure>;
/** The reply a worker posts when it fails (plus its own sender field). */
type ErrorReply = { type: "error" } & WorkerFailureReport;

/** node's flags for a worker thread: the parent's, except --input-type, which only fits `node -e` and breaks a worker. */
export function workerExecArgv(): string[] {
  return process.execArgv.filter((a) => !a.startsWith("--input-type"));
}

/** How long an "aborted by another member" error waits for that member's own error. */
const CAUSE_GRACE_MS = 1000;
/** How long a worker asked to leave may take before its thread is terminated. */
const SHUTDOWN_GRACE_MS = 3000;

export interface WorkerGroupOptions<M extends { type: string }, L> {
  /** Shared-memory groups the workers collect in; all are aborted on the first failure. */
  shmGroups: readonly ShmGroupHandle[];
  /** The message that asks a worker to leave (it closes its port and exits by itself). */
  leave: L;
  /** Index (in `workers`) of the worker that sent `m`. */
  sender(m: M): number;
  /** The run's errors, in the coordinator's own words. */
  errors: {
    reported(m: Extract<M, ErrorReply>): Error;
    crashed(worker: number, e: Error): Error;
    exited(worker: number, code: number): Error;
    unexpected(m: M): Error;
    /** Message of a call made while another one waits. */
    busy: string;
    /** Message of a call made after close. */
    closed: string;
  };
}

interface Waiter<M extends { type: string }> { want: M["type"]; count: number; got: Map<number, M>; resolve: (m: Map<number, M>) => void; reject: (e: Error) => void }

export class WorkerGroup<M extends { type: string }, L = unknown> {
  private waiter: Waiter<M> | null = null;
  private failed: Error | null = null;
  private closing = false;
  private pendingConsequence: NodeJS.Timeout | null = null;
  private shutdownDone: Promise<void> | null = null;
  private readonly exited = new Set<number>();

  constructor(readonly workers: readonly Worker[], private readonly o: WorkerGroupOptions<M, L>) {
    workers.forEach((w, i) => {
      w.on("message", (m: M) => this.onMessage(m));
      w.on("error", (e: Error) => this.abort(o.errors.crashed(i, e)));
      w.on("messageerror", (e: Error) => this.abort(o.errors.crashed(i, new Error(`a message could not be read: ${e.message}`))));
      w.on("exit", (code) => {
        this.exited.add(i);
        if (!this.closing) this.abort(o.errors.exited(i, code));
      });
    });
  }

  /** The run's failure, once there is one. */
  get failure(): Error | null { return this.failed; }

  /** Worker threads still running. */
  get live(): number { return this.workers.length - this.exited.size; }

  /** Resolves with the first reply of type `want` from each of `count` workers (default: all), by sender. */
  collect(want: M["type"], count = this.workers.length): Promise<Map<number, M>> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.closing) return Promise.reject(new Error(this.o.errors.closed));
    if (this.waiter) return Promise.reject(new Error(this.o.errors.busy));
    this.holdProcess(true);
    return new Promise((resolve, reject) => {
      this.waiter = {
        want,
        count,
        got: new Map(),
        resolve: (m) => { this.holdProcess(false); resolve(m); },
        reject: (e) => { this.holdProcess(false); reject(e); },
      };
    });
  }

  /** ref() (a call is in flight, or the group is ending) or unref() (idle) every worker thread. */
  private holdProcess(hold: boolean): void {
    for (const w of this.workers) {
      if (hold) w.ref();
      else w.unref();
    }
  }

  /** Asks every worker to leave; terminates the ones still running after a grace period. */
  async close(): Promise<void> {
    this.closing = true;
    this.clearPending();
    await this.shutdown();
  }

  private onMessage(m: M): void {
    if (isErrorReply(m)) {
      const err = this.o.errors.reported(m);
      if (m.abortedBy === undefined) { this.abort(err); return; }
      // Only a consequence of another member's failure: wait briefly for that member's own error.
      this.pendingConsequence ??= setTimeout(() => this.abort(err), CAUSE_GRACE_MS);
      return;
    }
    const w = this.waiter;
    if (!w || w.want !== m.type) { this.abort(this.o.errors.unexpected(m)); return; }
    w.got.set(this.o.sender(m), m);
    if (w.got.size === w.count) { this.waiter = null; w.resolve(w.got); }
  }

  private abort(err: Error): void {
    this.clearPending();
    if (this.failed) return;
    this.failed = err;
    this.closing = true;
    for (const g of this.o.shmGroups) abortShmGroup(g);
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(err);
    void this.shutdown();
  }

  private clearPending(): void {
    if (this.pendingConsequence) { clearTimeout(this.pendingConsequence); this.pendingConsequence = null; }
  }

  private shutdown(): Promise<void> {
    this.holdProcess(true);
    this.shutdownDone ??= shutdownWorkers(this.workers, this.exited, this.o.leave, SHUTDOWN_GRACE_MS);
    return this.shutdownDone;
  }
}

function isErrorReply<M extends { type: string }>(m: M): m is Extract<M, ErrorReply> { return m.type === "error"; }

/**
 * A worker's side: `fail(e)` reports the first error only, after aborting the worker's collectives
 * (so peers blocked in a collective stop at once instead of timing out).
 */
export class WorkerFailure {
  /** Set once the collectives exist. */
  comm: { abort(): void } | null = null;
  private done = false;

  constructor(private readonly report: (f: WorkerFailureReport) => void) {}

  get failed(): boolean { return this.done; }

  fail(e: unknown): void {
    if (this.done) return;
    this.done = true;
    this.comm?.abort();
    this.report(describeFailure(e));
  }
}
