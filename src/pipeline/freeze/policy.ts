// PipeTransformer's adaptive freeze policy: at each freeze check T the frozen prefix
// grows to min(schedule, gradient criterion), never shrinks, and never takes the last layer.
//
// Schedule: x_T = x_{T-1} + alpha * (L - x_{T-1}); the layers frozen are ceil(x_T). The ceiling is
// applied to the count in use, not carried into the next step: carrying it would run ahead of the
// closed form (L = 7, alpha = 1/3: carried ceilings give 5 at T = 2, the closed form 4). With the
// criterion off this is exactly ceil(L * (1 - (1-alpha)^T)), capped at L - 1. When the criterion
// binds, the schedule restarts from the bound: x_T = bound.
//
// Criterion (on the gradient norms the runtime records every step): per layer, the mean over the
// interval's steps of the layer's gradient L2 norm (norms, not squared norms, so the value is in the
// gradient's own units; the mean rather than the sum so intervals of different step counts compare);
// its relative change |a_T - a_{T-1}| / a_{T-1} from the previous interval; the bound is the first
// active layer whose change reaches the median change over the active layers. That layer is still
// moving as much as a typical layer, so it stays active: the bound freezes the layers before it.
// At the first check there is no previous interval, so the criterion sets no bound and the schedule
// alone decides.
import type { Tensor } from "../../tensor/tensor.js";
import { median } from "../../util/stats.js";

export const FREEZE_CRITERIA = ["grad-norm", "schedule"] as const;
export type FreezeCriterion = (typeof FREEZE_CRITERIA)[number];

export interface FreezeConfig {
  /** Fraction of the still-active layers frozen per check, in (0, 1]. 1/3 conservative, 1/2 aggressive. */
  alpha: number;
  /** Epochs between freeze checks (positive integer). */
  interval: number;
  /** "grad-norm": schedule bounded by the gradient criterion; "schedule": the alpha schedule alone. */
  criterion: FreezeCriterion;
}

const DEFAULT_FREEZE_CONFIG: Readonly<FreezeConfig> = Object.freeze({ alpha: 1 / 3, interval: 1, criterion: "grad-norm" });

/** Parses --freeze-alpha: "1/3", "0.5", ".25". Must lie in (0, 1]. */
export function parseAlpha(text: string): number {
  const t = text.trim();
  const frac = /^(\d+(?:\.\d*)?|\.\d+)\s*\/\s*(\d+(?:\.\d*)?|\.\d+)$/.exec(t);
  const dec = /^(\d+(?:\.\d*)?|\.\d+)$/.exec(t);
  const value = frac ? Number(frac[1]) / Number(frac[2]) : dec ? Number(dec[1]) : NaN;
  if (!Number.isFinite(value) || value <= 0 || value > 1) {
    throw new Error(`--freeze-alpha '${text}' is not valid; give a fraction in (0, 1] such as 1/3 (conservative) or 1/2 (aggressive)`);
  }
  return value;
}

export function parseFreezeCriterion(text: string): FreezeCriterion {
  if (!(FREEZE_CRITERIA as readonly string[]).includes(text)) {
    throw new Error(`--freeze-criterion '${text}' is not valid; choose one of: ${FREEZE_CRITERIA.join(", ")}`);
  }
  return text as FreezeCriterion;
}

/** FreezeConfig with every field optional and alpha also as text ("1/3"). */
export type FreezeOptions = Partial<Omit<FreezeConfig, "alpha">> & { alpha?: number | string };

/** Fills defaults and validates. */
export function resolveFreezeConfig(c: FreezeOptions = {}): FreezeConfig {
  const alpha = typeof c.alpha === "string" ? parseAlpha(c.alpha) : c.alpha ?? DEFAULT_FREEZE_CONFIG.alpha;
  if (!Number.isFinite(alpha) || alpha <= 0 || alpha > 1) throw new Error(`freeze alpha ${alpha} is not valid; it must lie in (0, 1], e.g. 1/3`);
  const interval = c.interval ?? DEFAULT_FREEZE_CONFIG.interval;
  if (!Number.isInteger(interval) || interval < 1) {
    throw new Error(`--freeze-interval ${interval} is not valid; it must be a positive integer number of epochs`);
  }
  const criterion = parseFreezeCriterion(c.criterion ?? DEFAULT_FREEZE_CONFIG.criterion);
  return { alpha, interval, criterion };
}

function checkLayers(layers: number): void {
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`freeze policy: layer count must be a positive integer, got ${layers}`);
}

// Absorbs float error in x before the ceiling (e.g. 9 * (1 - 2/3) = 3.0000000000000004 must freeze 3).
const EPS = 1e-9;
const ceilCount = (x: number): number => Math.ceil(x - EPS * Math.max(1, Math.abs(x)));

/** The schedule alone: min(ceil(L * (1 - (1-alpha)^T)), L - 1). */
export function scheduledFrozen(layers: number, alpha: number, T: number): number {
  checkLayers(layers);
  if (!Number.isInteger(T) || T < 0) throw new Error(`freeze check index T must be a non-negative integer, got ${T}`);
  return Math.min(ceilCount(layers * (1 - (1 - alpha) ** T)), layers - 1);
}

/** |cur - prev| / prev; a layer whose previous norm was 0 has changed infinitely unless still 0. */
function relativeChange(prev: number, cur: number): number {
  if (prev === 0) return cur === 0 ? 0 : Infinity;
  return Math.abs(cur - prev) / prev;
}

/**
 * The criterion's bound: the first layer l >= frozen whose relative change reaches the median of the
 * changes of layers frozen..L-1. `prev` and `cur` hold one interval-mean norm per layer (entries below
 * `frozen` are ignored). Returns the number of layers the criterion allows frozen (>= frozen).
 */
export function criterionBound(prev: readonly number[], cur: readonly number[], frozen: number): { bound: number; changes: number[]; median: number } {
  if (prev.length !== cur.length) throw new Error(`criterion: ${prev.length} previous norms but ${cur.length} current norms`);
  const L = cur.length;
  if (!Number.isInteger(frozen) || frozen < 0 || frozen >= L) throw new Error(`criterion: frozen count ${frozen} must be in [0, ${L - 1}]`);
  const changes = cur.map((c, l) => (l < frozen ? NaN : relativeChange(prev[l], c)));
  const med = median(changes.slice(frozen));
  let bound = frozen;
  while (changes[bound] < med) bound++; // terminates: the largest change is >= the median
  return { bound, changes, median: med };
}

export interface FreezeDecision {
  /** Freeze check index (1-based). */
  T: number;
  /** Frozen layers before and after this check. */
  before: number;
  frozen: number;
  /** What the alpha schedule alone would freeze (already capped at L - 1). */
  scheduled: number;
  /** The criterion's bound, or null when it set none (criterion off, or no previous interval). */
  bound: number | null;
  /** Per-layer relative changes of the interval-mean gradient norm (NaN for frozen layers), when computed. */
  changes?: number[];
}

/**
 * Everything a FreezePolicy decides from, as plain JSON (a checkpoint's freeze state): with it a
 * resumed run takes the same freeze decisions as an uninterrupted one. `changes` of past decisions
 * hold null where the live value was NaN or Infinity (JSON has neither); they are history only.
 */
export interface FreezePolicyState {
  frozen: number;
  checks: number;
  x: number;
  /** Per-layer sums of the current interval's gradient norms, and its step count. */
  sums: number[];
  steps: number;
  /** Interval-mean norms of the previous interval (the criterion's reference), or null. */
  previous: number[] | null;
  history: FreezeDecision[];
}

/** Stateful policy: the runtime records per-layer gradient norms each step and calls `endEpoch`. */
export class FreezePolicy {
  readonly config: FreezeConfig;
  private frozenCount = 0;
  private checksDone = 0;
  /** Real-valued schedule state x_T (see the header). */
  private x = 0;
  private sums: number[];
  private steps = 0;
  private previous: number[] | null = null;
  readonly history: FreezeDecision[] = [];

  constructor(readonly layers: number, config: FreezeOptions = {}) {
    checkLayers(layers);
    this.config = resolveFreezeConfig(config);
    this.sums = new Array<number>(layers).fill(0);
  }

  /** Layers currently frozen (always the prefix 0..frozen-1). */
  get frozen(): number { return this.frozenCount; }

  /** Freeze checks done so far. */
  get checks(): number { return this.checksDone; }

  /** Whether `layer` is frozen (no backward, no optimizer update). */
  isFrozen(layer: number): boolean { return layer < this.frozenCount; }

  /**
   * One training step's gradient L2 norm per layer (length L). Entries of frozen layers are ignored
   * (they have no gradient); active entries must be finite and >= 0.
   */
  recordGradNorms(norms: readonly number[]): void {
    if (norms.length !== this.layers) throw new Error(`recordGradNorms: got ${norms.length} norms for ${this.layers} layers`);
    for (let l = this.frozenCount; l < this.layers; l++) {
      const n = norms[l];
      if (!Number.isFinite(n) || n < 0) throw new Error(`recordGradNorms: gradient norm of layer ${l} is ${n}; it must be a finite number >= 0`);
      this.sums[l] += n;
    }
    this.steps++;
  }

  /** The policy's state (copies), for checkpoints. */
  snapshot(): FreezePolicyState {
    return {
      frozen: this.frozenCount, checks: this.checksDone, x: this.x, sums: [...this.sums], steps: this.steps,
      previous: this.previous ? [...this.previous] : null, history: this.history.map((d) => ({ ...d, ...(d.changes ? { changes: [...d.changes] } : {}) })),
    };
  }

  /** Continues from `s` (a snapshot of a policy with the same layer count); errors name the bad field. */
  restore(s: FreezePolicyState): void {
    const L = this.layers;
    const bad = (what: string, v: unknown): never => { throw new Error(`freeze policy state: ${what} is ${JSON.stringify(v)}; expected a value saved by a freeze policy over ${L} layers`); };
    const finite = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);
    if (!Number.isInteger(s.frozen) || s.frozen < 0 || s.frozen >= L) bad("frozen", s.frozen);
    if (!Number.isInteger(s.checks) || s.checks < 0) bad("checks", s.checks);
    if (!finite(s.x) || !Number.isInteger(s.steps) || s.steps < 0) bad("x / steps", [s.x, s.steps]);
    if (!Array.isArray(s.sums) || s.sums.length !== L || !s.sums.every(finite)) bad("sums", s.sums);
    if (s.previous !== null && (!Array.isArray(s.previous) || s.previous.length !== L || !s.previous.every(finite))) bad("previous", s.previous);
    if (!Array.isArray(s.history)) bad("history", s.history);
    this.frozenCount = s.frozen;
    this.checksDone = s.checks;
    this.x = s.x;
    this.sums = [...s.sums];
    this.steps = s.steps;
    this.previous = s.previous ? [...s.previous] : null;
    this.history.length = 0;
    for (const d of s.history) {
      this.history.push({ ...d, ...(d.changes ? { changes: d.changes.map((c) => (typeof c === "number" ? c : NaN)) } : {}) });
    }
  }

  /** Whether a check happens at the end of `epoch` (1-based count of completed epochs). */
  isCheckEpoch(epoch: number): boolean {
    if (!Number.isInteger(epoch) || epoch < 1) throw new Error(`epoch must be a positive integer (epochs completed), got ${epoch}`);
    return epoch % this.config.interval === 0;
  }

  /** Call after each epoch: runs the next check on interval boundaries, else returns null. */
  endEpoch(epoch: number): FreezeDecision | null {
    return this.isCheckEpoch(epoch) ? this.nextFrozen(this.checksDone + 1) : null;
  }

  /** Runs freeze check T (must be the next one, checks + 1) and starts a new interval. */
  nextFrozen(T: number): FreezeDecision {
    if (T !== this.checksDone + 1) throw new Error(`freeze checks run in order: next is T=${this.checksDone + 1}, got T=${T}`);
    const L = this.layers, before = this.frozenCount, alpha = this.config.alpha;
    const xSched = this.x + alpha * (L - this.x);
    const scheduled = Math.min(ceilCount(xSched), L - 1);
    let bound: number | null = null;
    let changes: number[] | undefined;
    const useCriterion = this.config.criterion === "grad-norm";
    let current: number[] | null = null;
    if (useCriterion) {
      if (this.steps === 0) throw new Error(`freeze check T=${T}: no gradient norms were recorded during the interval; call recordGradNorms every step or use --freeze-criterion schedule`);
      current = this.sums.map((s) => s / this.steps);
      if (this.previous) {
        const c = criterionBound(this.previous, current, before);
        bound = c.bound;
        changes = c.changes;
      }
    }
    let frozen = scheduled;
    if (bound !== null && bound < scheduled) {
      frozen = bound;
      this.x = bound; // restart the schedule from where the criterion held it
    } else {
      this.x = xSched;
    }
    frozen = Math.max(before, Math.min(frozen, L - 1)); // a prefix that never shrinks and keeps the last layer
    this.frozenCount = frozen;
    this.checksDone = T;
    this.previous = current;
    this.sums.fill(0);
    this.steps = 0;
    const d: FreezeDecision = { T, before, frozen, scheduled, bound, ...(changes ? { changes } : {}) };
    this.history.push(d);
    return d;
  }
}

/** L2 norm over several gradients (a layer's parameters); null gradients count as zero. */
export function gradNorm(grads: readonly (Tensor | null)[]): number {
  let s = 0;
  for (const g of grads) {
    if (!g) continue;
    const d = g.data;
    for (let i = 0; i < d.length; i++) s += d[i] * d[i];
  }
  return Math.sqrt(s);
}
