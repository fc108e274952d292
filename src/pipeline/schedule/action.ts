// The action IR: one unit of work on one stage. Schedules are per-worker lists of these, and every
// executor, the validator and the simulator read the same lists.

/** FB: a composite of one forward and one backward, overlapped on real hardware (DualPipeV). */
export type ActionKind = "F" | "B" | "W" | "REDUCE" | "STEP" | "FB";

/** The kinds a worker runs one at a time (an FB runs as its F then its B). */
export type SimpleActionKind = Exclude<ActionKind, "FB">;

/** The simple kinds; an FB is built from an F and a B by forwardBackward. */
export const ACTION_KINDS: readonly SimpleActionKind[] = ["F", "B", "W", "REDUCE", "STEP"];

/** Kinds that name an optimizer step (microbatch = step index, chunk 0) rather than a micro-batch. */
export function isStepKind(kind: ActionKind): kind is "REDUCE" | "STEP" {
  return kind === "STEP" || kind === "REDUCE";
}

/**
 * One action. `stage` is the physical stage 0..S-1; `chunk` selects one of the stage's `v` model
 * chunks (virtual stage `chunk * S + stage`). For F/B/W `microbatch` is the global micro-batch id
 * (step k uses ids k*M .. k*M+M-1); for STEP it is the index of the optimizer step on that stage,
 * and `chunk` is 0 (a STEP updates every chunk of the stage). REDUCE k (pipelines with replicas
 * only) sums the stage's gradients of step k over the replicas, right before its STEP k.
 */
export interface Action {
  readonly stage: number;
  readonly kind: ActionKind;
  readonly microbatch: number;
  readonly chunk: number;
  /** FB only: the backward half; stage, micro-batch and chunk above are the forward half's. */
  readonly backward?: Action;
}

export function action(stage: number, kind: SimpleActionKind, microbatch: number, chunk = 0): Action {
  return { stage, kind, microbatch, chunk };
}

/** The composite FB of forward `f` and backward `b` (two micro-batches, usually on a worker's two stages). */
export function forwardBackward(f: Action, b: Action): Action {
  if (f.kind !== "F" || b.kind !== "B") throw new Error(`an FB pair joins an F and a B, got ${formatAction(f)} and ${formatAction(b)}`);
  return { stage: f.stage, kind: "FB", microbatch: f.microbatch, chunk: f.chunk, backward: b };
}

/** The simple actions a (possibly composite) action runs, in order: [F, B] for an FB, else [a]. */
export function actionParts(a: Action): Action[] {
  if (a.kind !== "FB") return [a];
  if (!a.backward) throw new Error(`FB action on stage ${a.stage} has no backward half`);
  return [{ stage: a.stage, kind: "F", microbatch: a.microbatch, chunk: a.chunk }, a.backward];
}

/** An action a worker runs as one unit (no composite). */
export type SimpleAction = Action & { readonly kind: SimpleActionKind };

/** A list with every composite replaced by its parts, in order (how the runtime executes it). */
export function expandComposites(list: readonly Action[]): SimpleAction[] {
  return list.flatMap(actionParts) as SimpleAction[];
}

/**
 * Compact form: "1F3" (stage 1, forward, micro-batch 3), "0B2c1" (chunk 1), "2STEP0" (step 0),
 * "0REDUCE0" (the replicas' all-reduce before step 0), and "0F5&3B2" for an FB pair (forward half &
 * backward half). Chunk 0 is omitted.
 */
export function formatAction(a: Action): string {
  if (a.kind === "FB") return actionParts(a).map(formatAction).join("&");
  return `${a.stage}${a.kind}${a.microbatch}${a.chunk !== 0 ? `c${a.chunk}` : ""}`;
}

const ACTION_RE = /^(\d+)(STEP|REDUCE|F|B|W)(\d+)(?:c(\d+))?$/;

/** Parses the compact form back; throws naming the bad string and the expected shape. */
export function parseAction(text: string): Action {
  const halves = text.split("&");
  if (halves.length === 2) return forwardBackward(parseAction(halves[0]), parseAction(halves[1]));
  const m = ACTION_RE.exec(text.trim());
  if (!m) {
    throw new Error(
      `cannot parse action '${text}': expected <stage><F|B|W|REDUCE|STEP><microbatch>[c<chunk>] or an F&B pair, e.g. "1F3", "0B2c1", "0REDUCE0", "2STEP0", "0F5&3B2"`,
    );
  }
  const chunk = m[4] === undefined ? 0 : Number(m[4]);
  const kind = m[2] as SimpleActionKind;
  if (isStepKind(kind) && chunk !== 0) throw new Error(`cannot parse action '${text}': a ${kind} has no chunk`);
  return { stage: Number(m[1]), kind, microbatch: Number(m[3]), chunk };
}

/** Key identifying an action uniquely inside a schedule (same as its compact form). */
export const actionKey = formatAction;

/** A schedule: per-worker ordered action lists plus the shape they were generated for. */
export interface Schedule {
  readonly name: string;
  /** Physical stages S. */
  readonly stages: number;
  /** Micro-batches per optimizer step M. */
  readonly microbatches: number;
  /** Model chunks per stage v (interleaved); 1 otherwise. */
  readonly chunks: number;
  /** Optimizer steps covered by the lists; micro-batch ids run 0 .. steps*M-1. */
  readonly steps: number;
  /** True when backward is split into B (input gradient) and W (weight gradient). */
  readonly splitBackward: boolean;
  /** Synchronous schedules flush: a stage's forwards of step k+1 follow its STEP k. */
  readonly synchronous: boolean;
  /** stageToWorker[s] = worker that runs every action of stage s. */
  readonly stageToWorker: readonly number[];
  /** workers[w] = ordered actions of worker w. */
  readonly workers: readonly (readonly Action[])[];
  /**
   * Data-parallel copies of the pipeline (default 1). With R > 1 every stage has a REDUCE k right
   * before its STEP k (withReplicas), which sums the stage's gradients over the copies.
   */
  readonly replicas?: number;
}

/**
 * `s` run as `replicas` data-parallel copies: a REDUCE before every STEP (DeepSpeed's ReduceGrads);
 * a worker's consecutive STEPs of one step (a V's two stages) follow all their REDUCEs.
 * One copy is `s` itself. Only synchronous schedules: their gradients are reduced once per step.
 */
export function withReplicas(s: Schedule, replicas: number): Schedule {
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`replicas must be a positive integer, got ${replicas}`);
  const base = (s.replicas ?? 1) > 1 ? { ...s, workers: s.workers.map((l) => l.filter((a) => a.kind !== "REDUCE")) } : s;
  if (replicas === 1) return { ...base, replicas: 1 };
  if (!s.synchronous || s.steps > 1) {
    throw new Error(`${replicas} replicas need a synchronous schedule of one step (gpipe, 1f1b, interleaved, zb-h1), not '${s.name}': gradients are reduced once per optimizer step`);
  }
  // A worker's REDUCEs of a step all precede its STEPs of that step (one per stage it holds), so a
  // STEP finds every one of its stages summed (gradient clipping reads them all).
  const workers = base.workers.map((l) => l.flatMap((a, i) => {
    if (a.kind !== "STEP") return [a];
    if (l[i - 1]?.kind === "STEP" && l[i - 1].microbatch === a.microbatch) return [a];
    const reduces: Action[] = [];
    for (let j = i; l[j]?.kind === "STEP" && l[j].microbatch === a.microbatch; j++) reduces.push(action(l[j].stage, "REDUCE", a.microbatch));
    return [...reduces, a];
  }));
  return { ...base, workers, replicas };
}

/** Virtual stage index of (stage, chunk): micro-batches traverse virtual stages 0 .. S*v-1 in order. */
export function virtualStage(stage: number, chunk: number, stages: number): number {
  return chunk * stages + stage;
}

/** The action of `kind` on virtual stage `vs` (its stage and chunk) for micro-batch `mb`. */
export function atVirtualStage(kind: SimpleActionKind, vs: number, mb: number, stages: number): Action {
  return action(vs % stages, kind, mb, Math.floor(vs / stages));
}

/** Formats a schedule as one line per worker of compact actions (debugging, golden tests). */
export function formatSchedule(s: Schedule): string {
  return s.workers.map((list, w) => `w${w}: ${list.map(formatAction).join(" ")}`).join("\n");
}
