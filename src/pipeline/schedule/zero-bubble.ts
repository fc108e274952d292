// ZB-H1 (zero-bubble, "handcrafted 1"): 1F1B's order of F and B, with the backward split into the
// input-gradient B (on the critical path) and the weight-gradient W (no cross-stage dependency).
// W's are placed by a small unit-cost list-scheduling pass: a stage runs a pending W whenever its
// next F/B is not ready yet (filling what would be a bubble), and never lets more than s+1 W's pile
// up on stage s (stage 0 runs each W right after its B, the last stage defers by S-1, as in the
// paper's figure). Activations live from F until W; the peak on every stage stays at most 1F1B's
// stage-0 peak min(S, M), the paper's "same memory as 1F1B". Leftover W's run before the STEP.
// The placement is computed with F = B = W; simulated under other costs (F=1, B=2, W=1; F=2, B=2,
// W=1, ...) it still reaches the paper's bubble (S-1)(F+B-W) for M >= S (test/sim.test.ts).
import { action, type Action, actionKey, type Schedule } from "./action.js";
import { dependencies } from "./deps.js";
import { oneFOneBStep } from "./one-f-one-b.js";
import { fromStageLists, type ResolvedOptions } from "./options.js";

export interface ZbCosts { f: number; b: number; w: number }

export function zeroBubbleH1(o: ResolvedOptions, costs: ZbCosts = { f: 1, b: 1, w: 1 }): Schedule {
  const { stages: S, microbatches: M, steps } = o;
  const shape = { stages: S, microbatches: M, chunks: 1, splitBackward: true, synchronous: true };
  // Per stage: the fixed F/B/STEP sequence; W's get inserted into `out` as we go.
  const queues: Action[][] = [];
  for (let s = 0; s < S; s++) {
    const q: Action[] = [];
    for (let k = 0; k < steps; k++) q.push(...oneFOneBStep(s, S, M, k * M), action(s, "STEP", k));
    queues.push(q);
  }
  const out: Action[][] = queues.map(() => []);
  const ptr = new Array<number>(S).fill(0);
  const pending: Action[][] = queues.map(() => []);
  const free = new Array<number>(S).fill(0);
  const end = new Map<string, number>();
  const duration = (a: Action): number => (a.kind === "F" ? costs.f : a.kind === "B" ? costs.b : a.kind === "W" ? costs.w : 0);
  const run = (s: number, a: Action, t: number): void => {
    out[s].push(a);
    free[s] = t + duration(a);
    end.set(actionKey(a), free[s]);
    if (a.kind === "B") pending[s].push(action(s, "W", a.microbatch));
  };
  const done = (s: number): boolean => ptr[s] >= queues[s].length;
  let t = 0;
  for (;;) {
    for (let s = 0; s < S; s++) {
      while (!done(s) && free[s] <= t) {
        const next = queues[s][ptr[s]];
        const mustFlush = pending[s].length > s || (next.kind === "STEP" && pending[s].length > 0);
        const ready = dependencies(next, shape).every((d) => (end.get(actionKey(d)) ?? Infinity) <= t);
        if (mustFlush || (!ready && pending[s].length > 0)) run(s, pending[s].shift() as Action, t);
        else if (ready) { run(s, next, t); ptr[s]++; }
        else break;
      }
    }
    if (queues.every((_, s) => done(s))) break;
    const later = free.filter((f) => f > t);
    if (later.length === 0) throw new Error(`zb-h1 generator stuck at time ${t} (S=${S}, M=${M}); this is a bug`);
    t = Math.min(...later);
  }
  return fromStageLists("zb-h1", o, out, { splitBackward: true, synchronous: true });
}
