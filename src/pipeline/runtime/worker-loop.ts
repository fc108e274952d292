// How any worker (a worker thread, an MPI rank) drives its interpreter: run actions until the list
// ends or waits for a message, pump again when one arrives (or an asynchronous REDUCE finishes), and
// while waiting do background work in small units (weight-layout copies), arriving messages first.
// An error in an action or in background work stops the loop and goes to the worker's `fail`.
import type { WorkerInterpreter } from "./interpreter.js";

export interface LoopHooks {
  /** The list ran to its end. */
  finished(): void;
  /** The worker's failure: an action or background work threw. */
  fail(e: unknown): void;
  /** Around each burst of actions (memory samples, the MPI thread's state). */
  beforePump?(): void;
  afterPump?(): void;
  /** The list waits for a message: true when the worker waits its own way (polling), false to idle. */
  blocked?(): boolean;
  /**
   * Background work also between lists (default true). An MPI rank turns it off: between lists it
   * runs collectives, and a tensor-parallel rank's group stalled when one rank idled there.
   */
  idleBetweenLists?: boolean;
}

export class WorkerLoop {
  private running = false;
  private pumping = false;
  private idleQueued = false;
  private stopped = false;

  constructor(private readonly interp: WorkerInterpreter, private readonly h: LoopHooks) {}

  /** A list is running (started and not yet finished). */
  get busy(): boolean { return this.running; }

  /** Runs the list the interpreter was reset to. */
  start(): void {
    this.running = true;
    this.pump();
  }

  /** No more actions or background work (the worker failed or closed). */
  stop(): void { this.stopped = true; }

  /** Runs what can run now; call it after every delivered message. Never re-entered. */
  pump(): void {
    if (!this.running || this.pumping || this.stopped) return;
    this.pumping = true;
    let done: boolean;
    try {
      this.h.beforePump?.();
      done = this.interp.pump();
      this.h.afterPump?.();
    } catch (e) {
      this.failWith(e);
      return;
    } finally {
      this.pumping = false;
    }
    if (done) {
      this.running = false;
      this.h.finished();
      if (this.h.idleBetweenLists === false) return;
    } else if (this.h.blocked?.()) return;
    this.idleSoon();
  }

  /** Background work while the list waits for a message, or between lists. */
  idleSoon(): void {
    if (this.idleQueued || this.stopped) return;
    this.idleQueued = true;
    setImmediate(() => {
      this.idleQueued = false;
      if (this.stopped || (this.running && this.interp.ready)) return;
      try {
        if (this.interp.idle()) this.idleSoon();
      } catch (e) { this.failWith(e); }
    });
  }

  private failWith(e: unknown): void {
    this.stopped = true;
    this.h.fail(e);
  }
}
