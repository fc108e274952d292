// ZB-V (Qi et al., "Zero Bubble Pipeline Parallelism", section 6): V placement with the backward
// split into B and W. Worker r of p warms up with 2(p-r)-1 forwards of its down stage, then r pairs
// of (up F, down F), then p-r rounds of (up F, up B, up W) that turn micro-batches around; the steady
// state alternates (down F, down B, down W, up F, up B, up W); the cool-down runs r pairs of B's
// with their W's held back, then p-r (down B, down W), then every W still owed. The order is the
// one of PyTorch's ScheduleZBVZeroBubble. For M < 2p-1 the order is laid out for 2p-1 micro-batches
// and the missing ones are dropped (dropping actions never creates a wait). With F = B = W every
// worker is busy from its first action to its last: the paper's (p-1)(F+B-2W) bubble per stage pair.
import { action, type Action, type Schedule } from "./action.js";
import type { ResolvedOptions } from "./options.js";
import { vSchedule, vStagesOf } from "./v-shape.js";

function zbvWorker(r: number, S: number, M: number): Action[] {
  const p = S / 2, N = Math.max(2 * p - 1, M);
  const [down, up] = vStagesOf(r, S);
  const out: Action[] = [];
  const next = { f0: 0, f1: 0, b0: 0, b1: 0 };
  const F = (s: number, k: "f0" | "f1"): void => { out.push(action(s, "F", next[k]++)); };
  const B = (s: number, k: "b0" | "b1", withW: boolean): void => {
    out.push(action(s, "B", next[k]));
    if (withW) out.push(action(s, "W", next[k]));
    next[k]++;
  };
  for (let i = 0; i < 2 * (p - r) - 1; i++) F(down, "f0");
  for (let i = 0; i < r; i++) { F(up, "f1"); F(down, "f0"); }
  for (let i = 0; i < p - r; i++) { F(up, "f1"); B(up, "b1", true); }
  while (next.f1 < next.f0 || next.f0 < N) {
    if (next.f0 < N) F(down, "f0");
    B(down, "b0", true);
    F(up, "f1");
    B(up, "b1", true);
  }
  const w = { w0: next.b0, w1: next.b1 };
  for (let i = 0; i < r; i++) { B(down, "b0", false); B(up, "b1", false); }
  for (let i = 0; i < p - r; i++) { B(down, "b0", false); out.push(action(down, "W", w.w0++)); }
  while (w.w1 < next.b1) out.push(action(up, "W", w.w1++));
  while (w.w0 < next.b0) out.push(action(down, "W", w.w0++));
  return out.filter((a) => a.microbatch < M);
}

export function zeroBubbleV(o: ResolvedOptions): Schedule {
  return vSchedule("zb-v", o, (r) => zbvWorker(r, o.stages, o.microbatches), { splitBackward: true });
}
