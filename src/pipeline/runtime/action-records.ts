// Per-action timing records of a run (benchmarks and the simulator's measured cost model): which
// action ran, when (performance.now() ms of the recording process) and how much CPU time the
// process used meanwhile (µs, every thread of the process: a rank's MPI communication thread too).
// Recording never changes a result; it is off unless the setup's instrumentation asks for it.
import type { Action } from "../schedule/action.js";

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
 * The processes executor's record of one rank's last step (instrumentation.recordActions), times in
 * ms since the epoch (comparable across the ranks of one host). With replicas only the STEPs' list
 * remains in `actions`.
 */
export interface RankTimings {
  rank: number;
  actions: ActionRecord[];
  /** Pipeline messages sent and received: key, bytes, when (start of the send or of the handling) and the ms it took on this thread. */
  sends: MessageRecord[];
  receives: MessageRecord[];
  /** run() entered, the action list finished, run() returns. */
  begin: number; listDone: number; end: number;
}
export interface MessageRecord { key: string; bytes: number; at: number; ms: number }

/** A stopwatch for one action: wall and process CPU time. */
export function startRecord(): () => { start: number; end: number; cpu: number } {
  const c0 = process.cpuUsage(), start = performance.now();
  return () => {
    const end = performance.now(), c = process.cpuUsage(c0);
    return { start, end, cpu: c.user + c.system };
  };
}
