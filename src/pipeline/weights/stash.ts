// PipeDream weight stashing, and PipeDream-2BW as its two-version special case.
//
// Versions are numbered by the stage's optimizer steps. A forward records the version it ran with;
// the live weights ARE the newest version, so nothing is copied until an update would overwrite a
// version that an in-flight micro-batch still needs: beforeStep() then copies the live weights into a
// stash slot (copy-on-write). The backward of a micro-batch gets exactly the version its forward used
// and drops its reference; a version nobody references goes back to a free list (slots are reused,
// never reallocated, so the hot path does not allocate once the pipeline is in steady state).
// Memory: the live weights plus one slot per older version still in flight: at most tau + 1 versions.
//
// 2BW: the same mechanism capped at two versions (live + one shadow). Its update rule
// W(t+1) = W(t) - lr * grad f(W(t-1)) holds when every micro-batch's gradient is applied one update
// after its forward (delay 1); a schedule with a longer delay would need a third version, which is
// an error here rather than a silent third copy.
import { PolicyBase, checkMicrobatch, type PolicyContext, type PolicyName } from "./policy.js";
import { allocLike, copyInto, type WeightSet } from "./vec.js";

export class StashPolicy extends PolicyBase {
  readonly name: PolicyName;
  /** Optimizer steps done so far = id of the live version. */
  private version = 0;
  /** Version each in-flight micro-batch's forward used. */
  private readonly inFlight = new Map<number, number>();
  /** References to each version by in-flight micro-batches (the live version included). */
  private readonly refs = new Map<number, number>();
  /** Copies of older versions still referenced. */
  private readonly stashed = new Map<number, Float32Array[]>();
  private readonly free: Float32Array[][] = [];
  private readonly maxVersions: number;

  /** maxVersions: Infinity for stash, 2 for 2bw. */
  constructor(ctx: PolicyContext, opts: { maxVersions?: number; name?: "stash" | "2bw" } = {}) {
    super(ctx, `${opts.name ?? "stash"} policy`);
    this.name = opts.name ?? "stash";
    this.maxVersions = opts.maxVersions ?? Infinity;
    if (!(this.maxVersions >= 2)) throw new Error(`${this.name}: maxVersions must be >= 2, got ${this.maxVersions}`);
  }

  forwardWeights(mb: number): WeightSet {
    checkMicrobatch(this.name, mb);
    if (this.inFlight.has(mb)) {
      throw new Error(`${this.name}: forward of micro-batch ${mb} ran twice without its backward in between`);
    }
    this.inFlight.set(mb, this.version);
    this.refs.set(this.version, (this.refs.get(this.version) ?? 0) + 1);
    return this.live;
  }

  /**
   * The version the forward of mb used. The returned buffers stay unchanged until the next
   * beforeStep() of this policy (a released slot is only reused there).
   */
  backwardWeights(mb: number): WeightSet {
    checkMicrobatch(this.name, mb);
    const v = this.inFlight.get(mb);
    if (v === undefined) {
      throw new Error(`${this.name}: backward of micro-batch ${mb} has no stashed weights (its forward did not run under this policy, or its backward already ran)`);
    }
    this.inFlight.delete(mb);
    const left = (this.refs.get(v) ?? 0) - 1;
    if (left > 0) this.refs.set(v, left);
    else this.refs.delete(v);
    if (v === this.version) return this.live;
    const held = this.stashed.get(v);
    if (!held) throw new Error(`${this.name}: internal error: version ${v} of micro-batch ${mb} was not stashed`);
    if (left <= 0) {
      this.stashed.delete(v);
      this.free.push(held);
    }
    return held;
  }

  beforeStep(): void {
    // The live version is about to be overwritten: keep a copy if a micro-batch still needs it.
    if (!this.refs.has(this.version)) return;
    if (this.stashed.size + 2 > this.maxVersions) {
      const old = [...this.stashed.keys()].sort((a, b) => a - b);
      const waiting = [...this.inFlight].filter(([, v]) => v === old[0]).map(([mb]) => mb);
      throw new Error(`${this.name}: holds at most ${this.maxVersions} weight versions, but update ${this.version + 1} would need ` +
        `${this.stashed.size + 2}: micro-batch(es) ${waiting.join(", ")} of version ${old[0]} are still in flight. ` +
        `2bw needs every micro-batch's backward within one update of its forward (delay tau = 1; for async 1F1B ` +
        `M >= 2(S-1-s)+1 micro-batches per step on stage s); use --method stash for longer delays`);
    }
    const weights = this.free.pop() ?? allocLike(this.live);
    copyInto(weights, this.live);
    this.stashed.set(this.version, weights);
    this.notePeak();
  }

  afterStep(): void {
    this.version++;
  }

  describe(): string {
    return this.name === "2bw"
      ? "2bw (PipeDream-2BW: forward and backward of a micro-batch use the same version; at most 2 versions)"
      : "stash (PipeDream weight stashing: backward uses the version its forward used; up to tau+1 versions)";
  }

  /** Micro-batches whose forward ran and whose backward has not. */
  inFlightCount(): number { return this.inFlight.size; }

  /** Once drained every version is released, so nothing carries over (version ids are relative). */
  protected override checkSettled(): void {
    if (this.inFlight.size > 0) {
      throw new Error(`${this.name}: cannot save or load state with micro-batch(es) ${[...this.inFlight.keys()].join(", ")} in flight; checkpoint after the lists drain`);
    }
  }

  protected extraSets(): number { return this.stashed.size; }
  protected override versionCount(): number { return 1 + this.stashed.size; }
}
