// Optional lowering pass: makes the messages implied by the dependencies explicit, for executors
// that prefer to see them. A SEND goes right after the action that produces a tensor another
// worker needs, a RECV right before the action that consumes it. Sends are assumed non-blocking
// (buffered), receives blocking; under that rule lowering cannot introduce a deadlock.
import { type Action, actionParts, atVirtualStage, formatAction, type Schedule, virtualStage } from "./action.js";
import { dependencies, isMessage } from "./deps.js";

export type LoweredOp =
  | { readonly op: "compute"; readonly action: Action }
  | {
    readonly op: "send" | "recv";
    /** The action that produced the tensor (F: activation, B: input gradient). */
    readonly producer: Action;
    /** The action on the other worker that consumes it. */
    readonly consumer: Action;
    /** The other worker. */
    readonly peer: number;
    readonly tensor: "activation" | "gradient";
  };

/** Cross-stage consumers of a producing action: the next virtual stage's F, the previous one's B. */
function consumers(a: Action, s: Schedule): Action[] {
  const S = s.stages, last = S * s.chunks - 1;
  const vs = virtualStage(a.stage, a.chunk, S);
  if (a.kind === "F" && vs < last) return [atVirtualStage("F", vs + 1, a.microbatch, S)];
  if (a.kind === "B" && vs > 0) return [atVirtualStage("B", vs - 1, a.microbatch, S)];
  return [];
}

export function lowerCommunication(s: Schedule): LoweredOp[][] {
  return s.workers.map((list) => {
    const out: LoweredOp[] = [];
    for (const a of list) {
      for (const d of dependencies(a, s)) {
        if (d.kind !== "F" && d.kind !== "B") continue;
        if (d.stage === a.stage && d.chunk === a.chunk) continue; // F -> B on the same virtual stage
        if (!isMessage(d, a, s.stageToWorker)) continue;
        out.push({ op: "recv", producer: d, consumer: a, peer: s.stageToWorker[d.stage], tensor: d.kind === "F" ? "activation" : "gradient" });
      }
      out.push({ op: "compute", action: a });
      for (const p of actionParts(a)) {
        for (const c of consumers(p, s)) {
          if (!isMessage(p, c, s.stageToWorker)) continue;
          out.push({ op: "send", producer: p, consumer: c, peer: s.stageToWorker[c.stage], tensor: p.kind === "F" ? "activation" : "gradient" });
        }
      }
    }
    return out;
  });
}

/** "0F3", "send 0F3->w1", "recv 0F3<-w0" per op. */
export function formatLoweredOp(o: LoweredOp): string {
  if (o.op === "compute") return formatAction(o.action);
  return o.op === "send" ? `send ${formatAction(o.producer)}->w${o.peer}` : `recv ${formatAction(o.producer)}<-w${o.peer}`;
}
