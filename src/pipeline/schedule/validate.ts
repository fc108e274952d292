// Validator: from the per-worker lists alone, checks that every action is well-formed and on its
// stage's worker, that each (stage, micro-batch, chunk) has exactly one F and one B (and one W when
// the backward is split), one STEP per stage per step (and one REDUCE with replicas), and that running the lists in order never
// deadlocks. Also measures each stage's peak live activations.
import { type Action, actionParts, formatAction, isStepKind, type Schedule } from "./action.js";
import { execute } from "./execute.js";

export class ScheduleError extends Error {}

export interface ValidationResult {
  readonly ok: boolean;
  /** Readable problems; the deadlock grid is one multi-line entry. */
  readonly errors: string[];
  /**
   * Peak number of live micro-batch activations per stage (summed over chunks: for interleaved, one
   * unit is one chunk's activations). An F's activations stay live until its B frees them; with a
   * split backward they stay until W, because the weight gradient needs each layer's input.
   */
  readonly peakActivations: number[];
}

const MAX_LISTED = 8;

export function peakActivations(s: Schedule): number[] {
  const live = new Array<number>(s.stages).fill(0);
  const peak = new Array<number>(s.stages).fill(0);
  const release = s.splitBackward ? "W" : "B";
  for (const list of s.workers) {
    for (const a of list.flatMap(actionParts)) {
      if (a.stage < 0 || a.stage >= s.stages) continue;
      if (a.kind === "F") peak[a.stage] = Math.max(peak[a.stage], ++live[a.stage]);
      else if (a.kind === release) live[a.stage]--;
    }
  }
  return peak;
}

function structuralErrors(s: Schedule): string[] {
  const errs: string[] = [];
  const add = (m: string): void => { errs.push(m); };
  const S = s.stages, v = s.chunks, N = s.steps * s.microbatches, replicas = s.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1) add(`replicas ${replicas} must be a positive integer`);
  if (s.stageToWorker.length !== S) add(`stageToWorker has ${s.stageToWorker.length} entries for ${S} stages`);
  s.stageToWorker.forEach((w, st) => {
    if (!Number.isInteger(w) || w < 0 || w >= s.workers.length) add(`stage ${st} maps to worker ${w}, but there are ${s.workers.length} workers`);
  });
  const counts = new Map<string, number>();
  const check = (w: number, i: number, a: Action): void => {
    const at = `worker ${w} #${i} '${formatAction(a)}'`;
    if (!Number.isInteger(a.stage) || a.stage < 0 || a.stage >= S) return add(`${at}: stage ${a.stage} is outside 0..${S - 1}`);
    if (s.stageToWorker[a.stage] !== w) add(`${at}: stage ${a.stage} belongs to worker ${s.stageToWorker[a.stage]}`);
    if (!Number.isInteger(a.chunk) || a.chunk < 0 || a.chunk >= v) return add(`${at}: chunk ${a.chunk} is outside 0..${v - 1}`);
    if (isStepKind(a.kind)) {
      if (!Number.isInteger(a.microbatch) || a.microbatch < 0 || a.microbatch >= s.steps) return add(`${at}: step ${a.microbatch} is outside 0..${s.steps - 1}`);
      if (a.kind === "REDUCE" && replicas === 1) return add(`${at}: REDUCE in a schedule without replicas`);
    } else {
      if (!Number.isInteger(a.microbatch) || a.microbatch < 0 || a.microbatch >= N) return add(`${at}: micro-batch ${a.microbatch} is outside 0..${N - 1}`);
      if (a.kind === "W" && !s.splitBackward) return add(`${at}: W in a schedule without a split backward`);
    }
    const k = formatAction(a);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  };
  s.workers.forEach((list, w) => list.forEach((whole, i) => {
    if (whole.kind === "FB" && whole.backward?.kind !== "B") return add(`worker ${w} #${i}: an FB pair needs a B as its backward half, got ${whole.backward ? formatAction(whole.backward) : "none"}`);
    for (const a of actionParts(whole)) check(w, i, a);
  }));
  const expect = (a: Action): void => {
    const n = counts.get(formatAction(a)) ?? 0;
    if (n !== 1) add(`${formatAction(a)} appears ${n} times; expected exactly once`);
  };
  if (errs.length === 0) {
    const kinds = s.splitBackward ? (["F", "B", "W"] as const) : (["F", "B"] as const);
    for (let st = 0; st < S; st++) {
      for (let k = 0; k < s.steps; k++) {
        expect({ stage: st, kind: "STEP", microbatch: k, chunk: 0 });
        if (replicas > 1) expect({ stage: st, kind: "REDUCE", microbatch: k, chunk: 0 });
      }
      for (let j = 0; j < N; j++) for (let c = 0; c < v; c++) for (const kind of kinds) expect({ stage: st, kind, microbatch: j, chunk: c });
    }
  }
  if (errs.length > MAX_LISTED) return [...errs.slice(0, MAX_LISTED), `... and ${errs.length - MAX_LISTED} more problems`];
  return errs;
}

export function validateSchedule(s: Schedule): ValidationResult {
  const errors = structuralErrors(s);
  if (errors.length === 0) {
    const run = execute(s);
    if (run.deadlock) errors.push(run.deadlock.message);
  }
  return { ok: errors.length === 0, errors, peakActivations: peakActivations(s) };
}

/** Throws a ScheduleError listing every problem when the schedule is invalid. */
export function assertValidSchedule(s: Schedule): ValidationResult {
  const r = validateSchedule(s);
  if (!r.ok) throw new ScheduleError(`invalid schedule '${s.name}':\n${r.errors.join("\n")}`);
  return r;
}
