// Places several stages on one worker: merges the stages' own action orders into one list per
// worker. A unit-cost list scheduler replays the schedule: whenever a worker is free it runs, among
// the next actions of its stages whose inputs are ready, the one that started earliest when every
// stage had its own worker. Each stage keeps its order, so delays and memory per stage are unchanged.
import { type Action, actionKey, type Schedule } from "./action.js";
import { dependencies } from "./deps.js";
import { execute, UNIT_COSTS } from "./execute.js";

/** stageToWorker for `workers` contiguous blocks of stages (earlier workers take the extra stage). */
export function contiguousWorkers(stages: number, workers: number): number[] {
  if (!Number.isInteger(workers) || workers < 1 || workers > stages) {
    throw new Error(`workers must be an integer in 1..${stages} (the stage count), got ${workers}`);
  }
  const out: number[] = [];
  const base = Math.floor(stages / workers), extra = stages % workers;
  for (let w = 0; w < workers; w++) for (let i = 0; i < base + (w < extra ? 1 : 0); i++) out.push(w);
  return out;
}

export function checkStageToWorker(map: readonly number[], stages: number): number {
  if (map.length !== stages) throw new Error(`stage-to-worker map has ${map.length} entries for ${stages} stages`);
  const W = Math.max(...map) + 1;
  map.forEach((w, s) => {
    if (!Number.isInteger(w) || w < 0) throw new Error(`stage ${s} maps to worker ${w}; workers are integers from 0`);
  });
  for (let w = 0; w < W; w++) {
    if (!map.includes(w)) throw new Error(`worker ${w} gets no stage in the map [${map.join(",")}]; number workers 0..${W - 1} without gaps`);
  }
  return W;
}

export function colocate(s: Schedule, stageToWorker: readonly number[]): Schedule {
  const W = checkStageToWorker(stageToWorker, s.stages);
  const run = execute(s, UNIT_COSTS);
  if (run.deadlock) throw new Error(run.deadlock.message);
  const startOf = new Map<string, number>();
  for (const row of run.timeline) for (const x of row) startOf.set(actionKey(x.action), x.start);
  const queues: Action[][] = Array.from({ length: s.stages }, () => []);
  for (const list of s.workers) for (const a of list) queues[a.stage].push(a);
  const ptr = new Array<number>(s.stages).fill(0);
  const free = new Array<number>(W).fill(0);
  const end = new Map<string, number>();
  const out: Action[][] = Array.from({ length: W }, () => []);
  const stagesOf = Array.from({ length: W }, (_, w) => stageToWorker.flatMap((x, st) => (x === w ? [st] : [])));
  let left = queues.filter((q) => q.length > 0).length;
  let t = 0;
  for (;;) {
    for (let w = 0; w < W; w++) {
      while (free[w] <= t) {
        let best = -1;
        for (const st of stagesOf[w]) {
          if (ptr[st] >= queues[st].length) continue;
          const a = queues[st][ptr[st]];
          if (!dependencies(a, s).every((d) => (end.get(actionKey(d)) ?? Infinity) <= t)) continue;
          if (best < 0 || (startOf.get(actionKey(a)) ?? 0) < (startOf.get(actionKey(queues[best][ptr[best]])) ?? 0)) best = st;
        }
        if (best < 0) break;
        const a = queues[best][ptr[best]++];
        if (ptr[best] === queues[best].length) left--;
        out[w].push(a);
        free[w] = t + UNIT_COSTS.duration(a);
        end.set(actionKey(a), free[w]);
      }
    }
    if (left === 0) break;
    const later = free.filter((f) => f > t);
    if (later.length === 0) throw new Error(`colocate: no worker can proceed at time ${t}; this is a bug`);
    t = Math.min(...later);
  }
  return { ...s, stageToWorker: [...stageToWorker], workers: out };
}
