// GPipe: every forward of the step, then every backward, then one STEP per stage (flush).
import { action, type Action, type Schedule } from "./action.js";
import { fromStageLists, type ResolvedOptions } from "./options.js";

export function gpipe(o: ResolvedOptions): Schedule {
  const { stages: S, microbatches: M, steps } = o;
  const lists: Action[][] = [];
  for (let s = 0; s < S; s++) {
    const list: Action[] = [];
    for (let k = 0; k < steps; k++) {
      for (let j = 0; j < M; j++) list.push(action(s, "F", k * M + j));
      // Ascending order like torch.distributed.pipelining's ScheduleGPipe; the order does not change the bubble.
      for (let j = 0; j < M; j++) list.push(action(s, "B", k * M + j));
      list.push(action(s, "STEP", k));
    }
    lists.push(list);
  }
  return fromStageLists("gpipe", o, lists, { splitBackward: false, synchronous: true });
}
