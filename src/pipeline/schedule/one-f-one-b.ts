// 1F1B (PipeDream-Flush): stage s runs min(S-1-s, M) warm-up forwards, alternates F and B, drains, STEPs.
import { action, type Action, type Schedule } from "./action.js";
import { fromStageLists, type ResolvedOptions } from "./options.js";

/** The F/B order of one step of 1F1B on stage s (micro-batch ids offset by `base`). */
export function oneFOneBStep(s: number, S: number, M: number, base: number): Action[] {
  const warmup = Math.min(S - 1 - s, M);
  const out: Action[] = [];
  for (let j = 0; j < warmup; j++) out.push(action(s, "F", base + j));
  for (let i = 0; i < M - warmup; i++) {
    out.push(action(s, "F", base + warmup + i));
    out.push(action(s, "B", base + i));
  }
  for (let j = M - warmup; j < M; j++) out.push(action(s, "B", base + j));
  return out;
}

export function oneFOneB(o: ResolvedOptions): Schedule {
  const { stages: S, microbatches: M, steps } = o;
  const lists: Action[][] = [];
  for (let s = 0; s < S; s++) {
    const list: Action[] = [];
    for (let k = 0; k < steps; k++) list.push(...oneFOneBStep(s, S, M, k * M), action(s, "STEP", k));
    lists.push(list);
  }
  return fromStageLists("1f1b", o, lists, { splitBackward: false, synchronous: true });
}
