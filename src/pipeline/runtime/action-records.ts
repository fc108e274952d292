// Per-action timing records of a run (benchmarks and the simulator's measured cost model): which
// action ran, when (performance.now() ms of the recording process) and how much CPU time the
// process used meanwhile (µs, every thread of the process: a rank's MPI communication thread too).
// Recording never changes a result; it is off unless the setup's instrumentation asks for it.
import type { Action, Schedule } from "../schedule/action.js";

export interface ActionRecord {
  kind: Action["kind"];
  stage: number;
  chunk: number;
  microbatch: number;
  /** W actions of one stage chunk executed as one stacked pass (1 for every other action). */
  run: number;
  /** performance.now() at the start and end (ms). */
  start: number;
  end: number;
  /** CPU time of the process during the action (µs, user + system). */
  cpu: number;
}

/**
 * One worker's record of its last step (instrumentation.recordActions), times in ms since the epoch
 * (performance.timeOrigin + performance.now(): comparable across the threads and processes of one
 * host, up to the clock offset a processes run measures). The processes executor keeps one per MPI
 * rank (`rank`: the MPI rank); threads and inline one per worker (`rank`: the worker index).
 */
export interface RankTimings {
  rank: number;
  /** The pipeline worker and replica this record is of (absent: worker = rank, replica 0). */
  worker?: number;
  replica?: number;
  actions: ActionRecord[];
  /** Pipeline messages sent and received: key, bytes, when (start of the send or of the handling) and the ms it took on this thread. */
  sends: MessageRecord[];
  receives: MessageRecord[];
  /** Gradient all-reduces over the replicas (key "allreduce", bytes summed over the stage's parameters). */
  collectives?: MessageRecord[];
  /** This rank's clock against rank 0's, measured when the executor started (processes only). */
  clock?: ClockSync;
  /** run() entered, the action list finished, run() returns. */
  begin: number; listDone: number; end: number;
}
export interface MessageRecord { key: string; bytes: number; at: number; ms: number }

/**
 * A rank's clock against rank 0's (Cristian's algorithm, the round trip with the least time wins):
 * rank 0's time = this rank's time + offsetMs, known to within rttMs / 2.
 */
export interface ClockSync { offsetMs: number; rttMs: number; rounds: number }

/** The time base of every record: ms since the epoch, with performance.now()'s resolution. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Message records of one worker between two reads (take() hands them over and starts afresh). */
export class MessageLog {
  sends: MessageRecord[] = [];
  receives: MessageRecord[] = [];
  /** Off while forward-only lists run: evaluation messages are not part of a step. */
  paused = false;

  send(key: string, bytes: number, at: number): void { if (!this.paused) this.sends.push({ key, bytes, at, ms: epochNow() - at }); }
  receive(key: string, bytes: number, at: number): void { if (!this.paused) this.receives.push({ key, bytes, at, ms: epochNow() - at }); }

  take(): { sends: MessageRecord[]; receives: MessageRecord[] } {
    const out = { sends: this.sends, receives: this.receives };
    [this.sends, this.receives] = [[], []];
    return out;
  }
}

/** Bytes a message body holds (tensor data or targets). */
export function payloadBytes(p: { kind: "tensor"; data: Float32Array } | { kind: "targets"; labels: Int32Array | Float32Array }): number {
  return p.kind === "tensor" ? p.data.byteLength : p.labels.byteLength;
}

/** Interpreter records (performance.now() of this thread) on the epoch time base. */
export function onEpoch(records: readonly ActionRecord[]): ActionRecord[] {
  const o = performance.timeOrigin;
  return records.map((r) => ({ ...r, start: r.start + o, end: r.end + o }));
}

/**
 * An executor that can hand over the timing records of its last step (recordActions set): one per
 * worker it runs (threads, inline: all of them; processes: this rank's). `traceProcess` names what a
 * trace's processes are.
 */
export interface TimingSource {
  readonly traceProcess: "worker" | "rank";
  readonly name: string;
  /** The records of the last step, per worker (this rank's only, on processes); null unless the setup records actions. */
  stepTimings(): RankTimings[] | null;
  /** The schedule whose lists the records follow. */
  timingSchedule(): Schedule;
}

export function isTimingSource(x: unknown): x is TimingSource {
  return typeof x === "object" && x !== null && typeof (x as Partial<TimingSource>).stepTimings === "function";
}

/** A stopwatch for one action: wall and process CPU time. */
export function startRecord(): () => { start: number; end: number; cpu: number } {
  const c0 = process.cpuUsage(), start = performance.now();
  return () => {
    const end = performance.now(), c = process.cpuUsage(c0);
    return { start, end, cpu: c.user + c.system };
  };
}
