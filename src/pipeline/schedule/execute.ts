// Runs per-worker lists in order against the dependency graph: each worker starts its next action as
// soon as that action's dependencies have finished. With durations this is the simulator's core;
// without, it is the validator's deadlock check. Both read only the lists.
import { type Action, actionKey, actionParts, formatAction, isStepKind, type Schedule } from "./action.js";
import { consumerOf, dependencies, isMessage } from "./deps.js";

export interface Timed {
  readonly action: Action;
  readonly worker: number;
  readonly start: number;
  readonly end: number;
}

export interface ExecutionCosts {
  /** Duration of one action. */
  duration(a: Action): number;
  /** Delay added to a dependency edge that crosses workers (`to`: the simple action consuming it, an FB's half). */
  message(from: Action, to: Action): number;
}

export interface Execution {
  /** Every action that ran, per worker, in list order. */
  readonly timeline: Timed[][];
  /** Null when every action ran; otherwise the stuck report. */
  readonly deadlock: Deadlock | null;
}

export interface StuckWorker {
  worker: number;
  done: number;
  total: number;
  stuckAt: Action;
  waitingFor: { action: Action; where: string }[];
}

export interface Deadlock {
  readonly stuck: StuckWorker[];
  readonly message: string;
}

export const UNIT_COSTS: ExecutionCosts = { duration: (a) => (isStepKind(a.kind) ? 0 : 1), message: () => 0 };

export function execute(s: Schedule, costs: ExecutionCosts = UNIT_COSTS): Execution {
  const W = s.workers.length;
  const end = new Map<string, number>();
  const pos = new Array<number>(W).fill(0);
  const free = new Array<number>(W).fill(0);
  const timeline: Timed[][] = s.workers.map(() => []);
  let remaining = s.workers.reduce((n, l) => n + l.length, 0);
  let progress = true;
  while (remaining > 0 && progress) {
    progress = false;
    for (let w = 0; w < W; w++) {
      const list = s.workers[w];
      while (pos[w] < list.length) {
        const a = list[pos[w]];
        let ready = free[w];
        let ok = true;
        for (const d of dependencies(a, s)) {
          const e = end.get(actionKey(d));
          if (e === undefined) { ok = false; break; }
          ready = Math.max(ready, e + (isMessage(d, a, s.stageToWorker) ? costs.message(d, consumerOf(d, a, s)) : 0));
        }
        if (!ok) break;
        const finish = ready + costs.duration(a);
        // An FB pair's halves both end with it (on hardware they overlap).
        for (const p of actionParts(a)) end.set(actionKey(p), finish);
        timeline[w].push({ action: a, worker: w, start: ready, end: finish });
        free[w] = finish;
        pos[w]++;
        remaining--;
        progress = true;
      }
    }
  }
  return { timeline, deadlock: remaining > 0 ? describeDeadlock(s, pos, end) : null };
}

function describeDeadlock(s: Schedule, pos: number[], end: Map<string, number>): Deadlock {
  const where = new Map<string, [number, number]>();
  s.workers.forEach((l, w) => l.forEach((a, i) => { for (const p of actionParts(a)) where.set(actionKey(p), [w, i]); }));
  const stuck: StuckWorker[] = [];
  s.workers.forEach((list, w) => {
    if (pos[w] >= list.length) return;
    const a = list[pos[w]];
    const waitingFor = dependencies(a, s)
      .filter((d) => !end.has(actionKey(d)))
      .map((d) => {
        const at = where.get(actionKey(d));
        if (!at) return { action: d, where: "missing from every worker" };
        const [dw, di] = at;
        const rel = dw === w ? "later in its own list" : `behind ${formatAction(s.workers[dw][pos[dw]])}`;
        return { action: d, where: `worker ${dw} #${di}, ${rel}` };
      });
    stuck.push({ worker: w, done: pos[w], total: list.length, stuckAt: a, waitingFor });
  });
  const rows = [["worker", "done", "stuck at", "waiting for"]];
  for (const st of stuck) {
    rows.push([
      String(st.worker),
      `${st.done}/${st.total}`,
      formatAction(st.stuckAt),
      st.waitingFor.map((x) => `${formatAction(x.action)} (${x.where})`).join("; "),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const grid = rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join(" | "));
  const ran = pos.reduce((a, b) => a + b, 0);
  const total = s.workers.reduce((n, l) => n + l.length, 0);
  const message = `deadlock in schedule '${s.name}' after ${ran} of ${total} actions: no worker can start its next action\n${grid.join("\n")}`;
  return { stuck, message };
}
