// The simulator's timeline when workers share cores (more ranks than cores, or other load on the
// machine): the same list-order rule as schedule/execute.ts (a worker starts its next action once
// its dependencies have finished and their messages arrived), but a started action needs `work`
// seconds of a core and, with n actions running, each advances at min(1, cores / (n + background))
// of full speed: fair processor sharing, the way Linux shares cores among runnable processes of
// equal weight. A waiting worker uses no core (the MPI transport sleeps while it waits).
// A message may also need its sender's core (`senderSlice`): a rank's MPI communication thread runs
// on the core its computing thread uses, so a large message leaves only once the sender waits (its
// next action is not ready) or the scheduler gives that thread a slice, at most senderSlice after
// the send; its latency counts from then.
// Event-driven: time jumps to the next action end, the next action becoming ready or the next slice.
import { actionKey, actionParts, consumerOf, dependencies, isMessage, type Action, type ExecutionCosts, type Schedule, type Timed } from "../pipeline/schedule/index.js";

export interface SharedCores {
  cores: number;
  background: number;
  /** When each worker may start (default 0). */
  start?: readonly number[];
  /** Longest time a sent message waits for its busy sender's core (default 0: it leaves at once). */
  senderSlice?: number;
  /** Per worker: its actions take this many times longer (its own core shared with other load; default 1). */
  slowdown?: readonly number[];
}

interface Running { action: Action; worker: number; start: number; left: number }

/** Speed of each of n running actions. */
export function shareRate(n: number, c: SharedCores): number {
  return n === 0 ? 0 : Math.min(1, c.cores / (n + c.background));
}

/**
 * When action a may start on a worker free from `free`: its dependencies' ends (messages: from when
 * they left their sender) plus message times; null while one of them has not finished or left.
 */
function readyAt(s: Schedule, a: Action, free: number, end: ReadonlyMap<string, number>, left: ReadonlyMap<string, number>, costs: ExecutionCosts): number | null {
  let t = free;
  for (const d of dependencies(a, s)) {
    const k = actionKey(d);
    const msg = isMessage(d, a, s.stageToWorker);
    const e = msg ? left.get(k) : end.get(k);
    if (e === undefined) return null;
    t = Math.max(t, e + (msg ? costs.message(d, consumerOf(d, a, s)) : 0));
  }
  return t;
}

/** Every worker's timeline; throws if the lists cannot all run (validate the schedule first). */
export function executeSharedCores(s: Schedule, costs: ExecutionCosts, share: SharedCores): Timed[][] {
  const W = s.workers.length;
  if (share.start?.length && share.start.length !== W) throw new Error(`cost model: start has ${share.start.length} values for ${W} workers`);
  const slice = share.senderSlice ?? 0;
  const pos = new Array<number>(W).fill(0), free = s.workers.map((_, w) => share.start?.[w] ?? 0);
  const busy = new Array<boolean>(W).fill(false);
  const end = new Map<string, number>(), left = new Map<string, number>();
  /** Per worker: finished actions whose outgoing message has not left yet. */
  const unsent: { key: string; end: number }[][] = s.workers.map(() => []);
  const timeline: Timed[][] = s.workers.map(() => []);
  let running: Running[] = [];
  let now = 0;
  const eps = 1e-12;
  for (;;) {
    // At this instant: start what is ready; a worker left waiting lets its messages go, which may
    // make others ready; repeat until nothing changes. Note the earliest future event.
    let nextEvent = Infinity, changed = true;
    while (changed) {
      changed = false;
      nextEvent = Infinity;
      for (let w = 0; w < W; w++) {
        if (busy[w] || pos[w] >= s.workers[w].length) continue;
        const a = s.workers[w][pos[w]];
        const t = readyAt(s, a, free[w], end, left, costs);
        if (t === null) continue;
        if (t <= now + eps) { running.push({ action: a, worker: w, start: now, left: costs.duration(a) }); busy[w] = true; changed = true; }
        else nextEvent = Math.min(nextEvent, t);
      }
      for (let w = 0; w < W; w++) {
        for (const u of unsent[w]) {
          if (!busy[w] || u.end + slice <= now + eps) { left.set(u.key, busy[w] ? u.end + slice : now); changed = true; }
        }
        unsent[w] = unsent[w].filter((u) => !left.has(u.key));
        for (const u of unsent[w]) nextEvent = Math.min(nextEvent, u.end + slice);
      }
    }
    const base = shareRate(running.length, share);
    const rate = (r: Running): number => base / (share.slowdown?.[r.worker] ?? 1);
    const nextEnd = running.length ? now + Math.min(...running.map((r) => r.left / rate(r))) : Infinity;
    const t = Math.min(nextEnd, nextEvent);
    if (t === Infinity) break;
    for (const r of running) r.left -= (t - now) * rate(r);
    now = t;
    const finished = running.filter((r) => r.left <= eps);
    running = running.filter((r) => r.left > eps);
    for (const r of finished) {
      for (const k of actionParts(r.action).map(actionKey)) {
        end.set(k, now);
        if (slice > 0) unsent[r.worker].push({ key: k, end: now }); else left.set(k, now);
      }
      timeline[r.worker].push({ action: r.action, worker: r.worker, start: r.start, end: now });
      free[r.worker] = now;
      busy[r.worker] = false;
      pos[r.worker]++;
    }
  }
  const rest = s.workers.reduce((n, l, w) => n + l.length - pos[w], 0);
  if (rest > 0) throw new Error(`schedule '${s.name}': ${rest} action(s) could not run under shared cores (a deadlock; validate the schedule)`);
  return timeline;
}
