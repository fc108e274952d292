// DualPipeV (DeepSeek's DualPipe cut in half, as PyTorch's ScheduleDualPipeV lays it out): V
// placement; in the steady state each worker runs the forward of one micro-batch on one of its
// stages overlapped with the backward of another on its other stage, one composite FB action. On a
// GPU the pair hides one half's communication behind the other's compute; here the runtime runs
// the F and then the B (one CPU thread cannot overlap them), and the simulator charges a pair what
// its halves cost. A full backward is a B followed at once by its W; near the ends some backwards
// are split, their W's deferred to fill the drain. Needs M >= S (PyTorch's requirement too).
import { action, type Action, forwardBackward, type Schedule } from "./action.js";
import type { ResolvedOptions } from "./options.js";
import { vSchedule, vStagesOf } from "./v-shape.js";

function dualPipeVWorker(r: number, S: number, M: number): Action[] {
  const p = S / 2;
  const [s0, s1] = vStagesOf(r, S);
  const out: Action[] = [];
  const nextF = new Map<number, number>(), nextB = new Map<number, number>();
  const deferred: Action[] = [];
  const take = (m: Map<number, number>, s: number): number => { const j = m.get(s) ?? 0; m.set(s, j + 1); return j; };
  const F = (s: number): Action => action(s, "F", take(nextF, s));
  const fullB = (s: number): Action[] => { const j = take(nextB, s); return [action(s, "B", j), action(s, "W", j)]; };
  const splitB = (s: number): void => { const j = take(nextB, s); out.push(action(s, "B", j)); deferred.push(action(s, "W", j)); };
  const backward = (s: number, split: boolean): void => { if (split) splitB(s); else out.push(...fullB(s)); };
  const pair = (fs: number, bs: number): void => {
    const f = F(fs);
    const [b, w] = fullB(bs);
    out.push(forwardBackward(f, b), w);
  };
  const flushOne = (): void => { const w = deferred.shift(); if (w) out.push(w); };

  for (let i = 0; i < 2 * (p - r - 1); i++) out.push(F(s0));
  for (let i = 0; i <= r; i++) out.push(F(s0), F(s1));
  for (let i = 0; i < p - r - 1; i++) { splitB(s1); flushOne(); out.push(F(s1)); }
  for (let i = 0; i < M - S + r + 1; i++) {
    if (i === 0 && r === p - 1) out.push(F(s0), ...fullB(s1)); // the bottom worker's first turn has nothing to overlap
    else pair(s0, s1);
    pair(s1, s0);
  }
  for (let i = 0; i < p - r - 1; i++) { out.push(...fullB(s1)); pair(s1, s0); }
  // Drain: from half-way (one slot later on odd workers) backwards are split and their W's fill gaps.
  let split = false;
  const half = Math.floor((r + 1) / 2);
  for (let i = 0; i <= r; i++) {
    if (i === half && r % 2 === 1) split = true;
    backward(s1, split);
    if (i === half && r % 2 === 0) split = true;
    backward(s0, split);
  }
  for (let i = 0; i < p - r - 1; i++) { flushOne(); backward(s0, split); }
  while (deferred.length > 0) flushOne();
  return out;
}

export function dualPipeV(o: ResolvedOptions): Schedule {
  if (o.microbatches < o.stages) {
    throw new Error(`dualpipev needs at least as many micro-batches as stages: microbatches=${o.microbatches}, stages=${o.stages}; use --microbatches ${o.stages} or more`);
  }
  return vSchedule("dualpipev", o, (r) => dualPipeVWorker(r, o.stages, o.microbatches), { splitBackward: true });
}
