// Closed-form bubble fractions the simulator is tested against (costs equal on every stage, no
// message cost). Each one is checked in test/sim.test.ts over a grid of S, M, v.
import type { ResolvedCosts } from "./cost-model.js";

export interface BubbleFormula {
  /** Human-readable formula. */
  readonly expr: string;
  readonly value: number;
}

const uniform = (x: number[]): boolean => x.every((v) => v === x[0]);

/**
 * GPipe / 1F1B: (S-1)/(M+S-1) for any F and B. Interleaved (M a multiple of S): (S-1)/(vM+S-1), i.e.
 * bubble time / ideal time = (S-1)/(vM), exactly 1/v of 1F1B's (S-1)/M. ZB-H1 with F, B (input
 * gradient), W per micro-batch: for M >= S and W <= min(F, B) the makespan is M(F+B+W) + (S-1)(F+B-W)
 * (the paper's bubble); for M < S with F = B = W it is (2M+S-1+max(M,S)) F. ZB-V and DualPipeV (S = 2p
 * stages on p workers) with F = B = W, the papers' comparison case: every worker idles (p-1)F, the
 * fill of the V's bottom worker, once M >= S-1 (ZB-V) or M >= S (DualPipeV), so the fraction is
 * (p-1)/(6M+p-1). For DualPipeV that is DualPipe's (p-1)(F&B+B-3W) with F&B = F + input-gradient B
 * = 2F (the pair as the IR runs it), B = 2F (full backward), W = F. The zero-bubble paper calls ZB-V
 * zero-bubble at F = B = W because its optimizer post-validation lets the next iteration's warm-up
 * overlap this one's drain; a flushing STEP keeps the fill. Null where no formula applies (unequal
 * stages, message or step costs, other cases).
 */
export function bubbleFormula(name: string, S: number, M: number, v: number, c: ResolvedCosts): BubbleFormula | null {
  if (!uniform(c.forward) || !uniform(c.backward) || !uniform(c.weight) || c.message !== 0 || c.messagePerByte !== 0 || c.receive !== 0 || c.cores !== Infinity || c.background !== 0 || c.senderSlice !== 0 || c.start.length > 0 || c.slowdown.length > 0 || c.step.some((x) => x !== 0)) return null;
  const f = c.forward[0], b = c.backward[0], w = c.weight[0];
  if (f + b === 0) return null;
  if (name === "gpipe" || name === "1f1b" || (name === "interleaved" && v === 1)) {
    return { expr: "(S-1)/(M+S-1)", value: (S - 1) / (M + S - 1) };
  }
  if (name === "interleaved" && M % S === 0) return { expr: "(S-1)/(v*M+S-1)", value: (S - 1) / (v * M + S - 1) };
  if ((name === "zb-v" && M >= S - 1) || (name === "dualpipev" && M >= S)) {
    const p = S / 2;
    if (f === b - w && f === w) return { expr: "(p-1)/(6M+p-1), p = S/2", value: (p - 1) / (6 * M + p - 1) };
    return null;
  }
  if (name === "zb-h1") {
    const bi = b - w;
    if (M >= S && w <= f && w <= bi) {
      const makespan = M * (f + bi + w) + (S - 1) * (f + bi - w);
      return { expr: "1 - M(F+B+W)/(M(F+B+W)+(S-1)(F+B-W))", value: 1 - (M * (f + bi + w)) / makespan };
    }
    if (f === bi && f === w) {
      return { expr: "1 - 3M/(2M+S-1+max(M,S))", value: 1 - (3 * M) / (2 * M + S - 1 + Math.max(M, S)) };
    }
  }
  return null;
}
