// Asynchronous 1F1B without flush (PipeMare / Pipelined Backpropagation). Time is cut into ticks; in
// tick t stage s runs F of micro-batch t-s, then B of micro-batch t-s-d_s with d_s = 2(S-1-s)+1 (the
// ticks a micro-batch needs to reach the last stage and come back), then a STEP as soon as it holds
// the gradients of M micro-batches. Every dependency crosses a tick boundary, so in steady state
// every stage is busy. Micro-batch ids are global (step k owns k*M .. k*M+M-1); batch size 1 is M = 1.
import { action, type Action, type Schedule } from "./action.js";
import { fromStageLists, type ResolvedOptions } from "./options.js";

/** Round trip in ticks from F(s, j) to B(s, j): the B runs d_s ticks after the F. */
export function roundTripTicks(S: number, s: number): number {
  return 2 * (S - 1 - s) + 1;
}

export function asyncOneFOneB(o: ResolvedOptions): Schedule {
  const { stages: S, microbatches: M, steps } = o;
  if (o.chunks !== 1) throw new Error(`async supports --chunks 1 only, got ${o.chunks}`);
  const N = steps * M;
  const lists: Action[][] = [];
  for (let s = 0; s < S; s++) {
    const d = roundTripTicks(S, s);
    const list: Action[] = [];
    for (let t = s; t < s + d + N; t++) {
      const f = t - s;
      const b = t - s - d;
      if (f < N) list.push(action(s, "F", f));
      if (b >= 0) {
        list.push(action(s, "B", b));
        if ((b + 1) % M === 0) list.push(action(s, "STEP", (b + 1) / M - 1));
      }
    }
    lists.push(list);
  }
  return fromStageLists("async", o, lists, { splitBackward: false, synchronous: false });
}
