// The interpreter of one worker's action list, shared by every executor. It only executes actions:
// F/B/W on the stage chunks the worker holds, STEP on a physical stage's optimizer. Inputs arrive as
// named messages in a mailbox; `pump()` runs actions until the list ends or the next action waits for
// a message that has not arrived (the executor calls it again after delivering one). Because every
// action consumes only named inputs, in list order, the numbers never depend on timing.
//
// Evaluation runs forward-only lists in "eval" or "predict" mode (ForwardMode): F in eval mode
// without gradients, nothing kept for a backward.
//
// Asynchronous schedules (STEP interleaved with F/B, weight versions per micro-batch) plug in through
// `WeightHooks`, called at F, B, W and STEP with the physical stage and micro-batch: a weight policy
// swaps in the version a micro-batch must see and restores it afterwards, and `stageLrFactor` gives
// each stage its own learning-rate factor per STEP (PipeMare's T1).
import { type Action, expandComposites, formatAction, isStepKind, type Schedule, type SimpleAction, virtualStage } from "../schedule/action.js";
import { Tensor } from "../../tensor/tensor.js";
import type { ForwardResult, MicrobatchMetrics, MicrobatchTargets, Stage, Target } from "../stage.js";
import type { Optimizer } from "../../optim/index.js";
import { holdWeights, prepareHeldCopy, releaseWeights } from "../../autograd/weight-layouts.js";
import { startRecord, type ActionRecord } from "./action-records.js";
import type { ActivationMeter } from "../activation-bytes.js";

/** A message body: an activation or gradient tensor, or the targets of a micro-batch. */
export type Payload =
  /** prepare: the global micro-batch id of an input that stage 0's worker first runs through the model's prepareInput (input-hook.ts). */
  | { kind: "tensor"; data: Float32Array; shape: number[]; prepare?: number }
  /** Class ids (Int32Array), or a float target tensor's values with its `shape`. */
  | { kind: "targets"; labels: Int32Array | Float32Array; shape?: number[]; scale: number };

/** A micro-batch's targets as a message (the caller's arrays, not copied). */
export function targetsPayload(t: Target, scale: number): Payload {
  return t instanceof Int32Array ? { kind: "targets", labels: t, scale } : { kind: "targets", labels: t.data, shape: [...t.shape], scale };
}

/** The targets a message carries. */
function payloadTargets(p: Extract<Payload, { kind: "targets" }>): MicrobatchTargets {
  return { labels: p.labels instanceof Int32Array ? p.labels : new Tensor(p.labels, p.shape ?? [p.labels.length]), scale: p.scale };
}

/** Message names: everything a worker consumes is named by (what, virtual stage, micro-batch). */
export const messageKey = {
  /** Stands for the replicas' part of physical stage s's REDUCE of step k while it runs (never delivered). */
  reduce: (s: number, step: number): string => `r${s}:${step}`,
  /** Stands for the gradient-norm sum of step k over the model's ranks while it runs (never delivered). */
  norm: (step: number): string => `n${step}`,
  /** Input activation of virtual stage v (v = 0: the model input from the data loader). */
  activation: (v: number, mb: number): string => `a${v}:${mb}`,
  /** Gradient of the output of virtual stage v. */
  gradient: (v: number, mb: number): string => `g${v}:${mb}`,
  /** Targets of micro-batch mb, consumed by the last virtual stage. */
  targets: (mb: number): string => `y${mb}`,
};

/**
 * A message the next action waits for, and who sends it: a virtual stage, the data loader, the
 * stage's replicas (REDUCE), or the other ranks of the model (the gradient-norm sum before a STEP).
 */
export type Wait = { key: string } & ({ from: "stage"; virtualStage: number } | { from: "loader" } | { from: "replicas"; stage: number } | { from: "model" });

export interface Outbox {
  /** Delivers a message to worker `to`; `transferable`: the sender is done with the buffer (it may be moved, not copied). */
  send(to: number, key: string, payload: Payload, transferable: boolean): void;
  /** Called after every action: messages in flight may advance (MPI progress on the computing thread). */
  progress?(): void;
}

/** The part of src/optim's Optimizer a stage uses. */
export type StageOptimizer = Pick<Optimizer<{ lr: number }, { step: number }>, "step" | "zeroGrad" | "setLrFactor" | "stateDict" | "loadStateDict" | "stateBytes">;

/** A physical stage: its chunks (virtual stages chunk*S+index) and one optimizer over all of them. */
export interface PhysicalStage {
  readonly index: number;
  /** chunks[c] = the Stage of chunk c. */
  readonly chunks: readonly Stage[];
  readonly optimizer: StageOptimizer | null;
}

/** Weight-policy hooks (asynchronous methods); all optional, all synchronous. */
export interface WeightHooks {
  beforeForward?(stage: PhysicalStage, chunk: number, microbatch: number): void;
  afterForward?(stage: PhysicalStage, chunk: number, microbatch: number): void;
  beforeBackward?(stage: PhysicalStage, chunk: number, microbatch: number): void;
  afterBackward?(stage: PhysicalStage, chunk: number, microbatch: number): void;
  beforeStep?(stage: PhysicalStage, step: number): void;
  afterStep?(stage: PhysicalStage, step: number): void;
  /** A per-stage factor on this STEP's learning rate (PipeMare T1), times the list's; asked after beforeStep. */
  stageLrFactor?(stage: PhysicalStage, step: number): number;
}

/** An error inside an action, naming the stage and the action ("1F3"). */
export class PipelineActionError extends Error {
  constructor(readonly worker: number, readonly stage: number, readonly action: string, readonly causeMessage: string,
    readonly causeStack?: string, cause?: Error) {
    super(`stage ${stage}, action ${action} (worker ${worker}): ${causeMessage}`, cause ? { cause } : undefined);
    this.name = "PipelineActionError";
  }
}

/**
 * How F runs: "train" keeps what B needs; "eval" (forward-only lists) runs in eval mode without
 * gradients, the last stage reporting metrics; "predict" is "eval" whose last stage hands its output
 * to onOutput instead (no targets).
 */
export type ForwardMode = "train" | "eval" | "predict";

export interface InterpreterOptions {
  worker: number;
  /** The schedule whose list `workers[worker]` this worker runs. */
  schedule: Schedule;
  /** The physical stages this worker runs, by stage index. */
  stages: ReadonlyMap<number, PhysicalStage>;
  outbox: Outbox;
  /** Called with the metrics of each micro-batch the last virtual stage finishes forward. */
  onMetrics?(microbatch: number, m: MicrobatchMetrics): void;
  /** Called with the last virtual stage's output of each micro-batch in "predict" mode. */
  onOutput?(microbatch: number, output: Tensor): void;
  hooks?: WeightHooks;
  /** Benchmarking only: seconds to sleep before each action (synthetic costs: the executor's overhead apart from the machine's parallelism). */
  actionDelay?(a: Action): number;
  /**
   * The weights change only through this interpreter's STEPs (a worker thread or rank owns its stages):
   * held between lists too, so layout copies are made while it waits. Inline shares the caller's model.
   */
  ownsWeights?: boolean;
  /** Benchmarking only: keep an ActionRecord of every action in `records` (cleared at reset). */
  recordActions?: boolean;
  /** REDUCE: the stage's gradients summed over the replicas in a fixed order; synchronous, or a promise (then `wake`). */
  reduce?(stage: PhysicalStage, step: number): void | Promise<void>;
  /**
   * Gradient clipping at the worker's first STEP of each optimizer step (after its REDUCEs): all its
   * stages' gradients to the global norm bound. Collective over the model's ranks; as `reduce`.
   */
  clip?(stages: readonly PhysicalStage[], step: number): void | Promise<void>;
  /** Called when an asynchronous REDUCE or clip has finished: pump again. */
  wake?(): void;
  /**
   * A message from another stage as the action consumes it: a tensor group whose ranks each received
   * a part gathers the whole (collective: the group's ranks run the same action at the same point).
   */
  assemble?(p: Payload): Payload;
  /** At STEP, before the optimizer: the stage's gradients are final (summed over the replicas). */
  beforeOptimizer?(stage: PhysicalStage): void;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks this thread for `seconds` without using the CPU. */
function sleepSync(seconds: number): void {
  if (seconds > 0) Atomics.wait(sleepCell, 0, 0, seconds * 1000);
}

export class WorkerInterpreter {
  readonly mailbox = new Map<string, Payload>();
  private pc = 0;
  /** The list being run, FB pairs replaced by their F then B (no overlap on one thread). */
  private actions: readonly SimpleAction[];
  private lrFactors: readonly number[] = [1];
  private mode: ForwardMode = "train";
  /** Seconds spent inside actions since the last reset, per kind (for profiling and benchmarks). */
  readonly busy = { F: 0, B: 0, W: 0, REDUCE: 0, STEP: 0 };
  /**
   * Most micro-batch activations (summed over chunks) each physical stage held at once since the
   * last reset: the runtime's counterpart of the validator's peakActivations.
   */
  readonly peakLive = new Map<number, number>();
  /** With `recordActions`: the actions run since the last reset, in order. */
  readonly records: ActionRecord[] = [];
  /** Where this worker's stages count their activation bytes (one meter unless built apart). */
  private readonly meters: ReadonlySet<ActivationMeter>;
  private readonly holdsWeights: boolean;

  constructor(private readonly o: InterpreterOptions) {
    this.actions = expandComposites(o.schedule.workers[o.worker]);
    // Without weight hooks a stage's weights change only at its STEP: while a list runs they are
    // held in between, so thin products may reuse derived layouts of them (autograd/weight-layouts.ts).
    this.holdsWeights = !o.hooks;
    this.meters = new Set([...o.stages.values()].flatMap((p) => p.chunks.map((c) => c.meter)));
    for (const a of this.actions) {
      if (!o.stages.has(a.stage)) throw new Error(`worker ${o.worker} got action ${formatAction(a)} for stage ${a.stage}, which it does not hold`);
      if (!isStepKind(a.kind) && !o.stages.get(a.stage)!.chunks[a.chunk]) {
        throw new Error(`worker ${o.worker} got action ${formatAction(a)} for chunk ${a.chunk}, which stage ${a.stage} does not hold`);
      }
    }
  }

  /** Holds (or releases) the weights of `only` or of every stage this worker runs. */
  private hold(on: boolean, only?: PhysicalStage): void {
    if (!this.holdsWeights) return;
    const weights = [...(only ? [only] : this.o.stages.values())].flatMap((p) => p.chunks.flatMap((c) => c.parameters));
    if (on) holdWeights(weights); else releaseWeights(weights);
  }

  /** Ends the list early (a failed step, a closed executor): the weights are no longer held. */
  abandon(): void { this.hold(false); }

  /**
   * Background work for a worker whose next action waits for a message (or, when it owns its
   * weights, for the next list): one unit (a weight-layout copy its thin products will want); false
   * when there is none. It never changes a result.
   */
  idle(): boolean {
    return this.holdsWeights && (!this.done || this.o.ownsWeights === true) && prepareHeldCopy();
  }

  /**
   * Most activation bytes this worker's stages held at once since the last reset: the saved graphs
   * (or stashed inputs when recomputing) of its micro-batches, counted from tensors (activation-bytes.ts).
   */
  get peakActivationBytes(): number { return [...this.meters].reduce((n, m) => n + m.peak, 0); }

  get worker(): number { return this.o.worker; }
  /** The physical stages this worker runs. */
  get stages(): ReadonlyMap<number, PhysicalStage> { return this.o.stages; }

  get done(): boolean { return this.pc >= this.actions.length; }

  /** The next action, or null when finished. */
  get next(): Action | null { return this.actions[this.pc] ?? null; }

  /**
   * Rewinds to the start of `actions`, or of the worker's schedule list (the next mini-batch of a
   * synchronous schedule). STEP k of the list uses learning-rate factor lrFactors[k] (the last one
   * when the list has more steps).
   */
  reset(lrFactors: readonly number[] = [1], actions?: readonly Action[], mode: ForwardMode = "train"): void {
    if (lrFactors.length === 0) throw new Error("reset needs at least one learning-rate factor");
    const list = actions ?? this.o.schedule.workers[this.worker];
    if (mode !== "train" && list.some((a) => a.kind !== "F")) throw new Error(`a ${mode} list holds only F actions`);
    this.pc = 0;
    this.mode = mode;
    // Held from here to the end of the list (or its failure); outside, anyone may change them.
    this.hold(true);
    this.lrFactors = lrFactors;
    this.actions = expandComposites(list);
    this.busy.F = this.busy.B = this.busy.W = this.busy.REDUCE = this.busy.STEP = 0;
    this.reducing = null;
    this.clipped = -1;
    this.peakLive.clear();
    for (const m of this.meters) m.resetPeak();
    this.records.length = 0;
  }

  deliver(key: string, payload: Payload): void {
    if (this.mailbox.has(key)) throw new Error(`worker ${this.worker}: message ${key} arrived twice`);
    this.mailbox.set(key, payload);
  }

  /** Whether the next action can run now (or the list has ended): polling loops ask this often, so it builds no Wait list. */
  get ready(): boolean {
    const a = this.next;
    if (!a) return true;
    if (this.reducing) return this.reducing.settled;
    return this.needs(a).every((k) => this.mailbox.has(k));
  }

  /** What the next action still waits for, with who sends each (the watchdog names them). */
  waits(): Wait[] {
    const a = this.next;
    if (!a) return [];
    if (this.reducing && !this.reducing.settled) {
      return [a.kind === "STEP" ? { key: messageKey.norm(a.microbatch), from: "model" } : { key: messageKey.reduce(a.stage, a.microbatch), from: "replicas", stage: a.stage }];
    }
    const vs = virtualStage(a.stage, a.chunk, this.o.schedule.stages);
    return this.needs(a).filter((k) => !this.mailbox.has(k)).map((key): Wait => {
      if (a.kind === "B") return { key, from: "stage", virtualStage: vs + 1 };
      // F: its activation from the stage before (the loader's at virtual stage 0), and the loader's targets.
      return key === messageKey.activation(vs, a.microbatch) && vs > 0 ? { key, from: "stage", virtualStage: vs - 1 } : { key, from: "loader" };
    });
  }

  /** The step whose gradients this worker last clipped (-1: none since the list began). */
  private clipped = -1;
  /** The asynchronous REDUCE (or clip before a STEP) at `pc` while it runs (its hook returned a promise). */
  private reducing: { pc: number; settled: boolean; error: unknown; finish: () => void } | null = null;

  /**
   * Runs or continues the REDUCE (or the clip before the STEP) at pc: true when it has finished
   * (records and busy time taken), false while its promise is pending.
   */
  private collective(a: Action): boolean {
    const r = this.reducing;
    if (r && r.pc === this.pc) {
      if (!r.settled) return false;
      this.reducing = null;
      if (r.error !== undefined) throw r.error;
      r.finish();
      return true;
    }
    if (a.kind === "REDUCE" && !this.o.reduce) throw new Error(`REDUCE needs replicas to reduce over, and this executor runs one copy of the pipeline`);
    // A clip has no record of its own (records follow the list's actions); its time counts as STEP's.
    const t0 = performance.now(), stop = this.o.recordActions && a.kind === "REDUCE" ? startRecord() : null;
    const finish = (): void => {
      this.busy[a.kind === "REDUCE" ? "REDUCE" : "STEP"] += (performance.now() - t0) / 1000;
      if (stop) this.records.push({ kind: a.kind, stage: a.stage, chunk: 0, microbatch: a.microbatch, run: 1, ...stop() });
    };
    const pending = a.kind === "REDUCE" ? this.o.reduce!(this.o.stages.get(a.stage)!, a.microbatch) : this.o.clip!([...this.o.stages.values()], a.microbatch);
    if (!pending) { finish(); return true; }
    const state = { pc: this.pc, settled: false, error: undefined as unknown, finish };
    this.reducing = state;
    const settle = (e?: unknown): void => { state.settled = true; state.error = e; this.o.wake?.(); };
    pending.then(() => settle(), (e: unknown) => settle(e ?? new Error(`${a.kind === "REDUCE" ? "REDUCE" : "gradient clipping"} failed`)));
    return false;
  }

  private needs(a: Action): string[] {
    const { stages: S, chunks: v } = this.o.schedule;
    const vs = virtualStage(a.stage, a.chunk, S);
    const last = S * v - 1;
    if (a.kind === "F") {
      const x = messageKey.activation(vs, a.microbatch);
      return vs === last && this.mode !== "predict" ? [x, messageKey.targets(a.microbatch)] : [x];
    }
    if (a.kind === "B") return vs === last ? [] : [messageKey.gradient(vs, a.microbatch)];
    return [];
  }

  /** Runs actions until the list ends (true) or the next one waits for a message (false). */
  pump(): boolean {
    while (this.pc < this.actions.length) {
      const a = this.actions[this.pc];
      if (a.kind === "REDUCE" || (a.kind === "STEP" && this.o.clip && this.clipped !== a.microbatch)) {
        if (!this.guard(a, () => this.collective(a))) return false;
        if (a.kind === "REDUCE") { this.pc++; continue; }
        this.clipped = a.microbatch; // the STEP itself runs below
      }
      const keys = this.needs(a);
      if (keys.some((k) => !this.mailbox.has(k))) return false;
      // A run of W's of one stage chunk executes as one pass (their weight gradients stacked).
      const run = a.kind === "W" ? this.wRun(this.pc) : 1;
      const t0 = performance.now();
      const stop = this.o.recordActions ? startRecord() : null;
      this.guard(a, () => {
        // A synthetic cost is paid before the action, so its outputs leave only after it.
        if (this.o.actionDelay) for (let i = 0; i < run; i++) sleepSync(this.o.actionDelay(this.actions[this.pc + i]));
        const phys = this.o.stages.get(a.stage)!;
        if (a.kind === "W") {
          if (!this.o.schedule.splitBackward) throw new Error(`W in a schedule whose backward is not split`);
          phys.chunks[a.chunk].weightGrads(this.actions.slice(this.pc, this.pc + run).map((w) => w.microbatch)); // one stacked pass
        } else if (a.kind === "STEP") this.step(phys, a.microbatch);
        else if (a.kind === "F") this.forward(phys, a, keys);
        else this.backward(phys, a, keys);
      });
      this.busy[a.kind] += (performance.now() - t0) / 1000;
      if (stop) this.records.push({ kind: a.kind, stage: a.stage, chunk: a.chunk, microbatch: a.microbatch, run, ...stop() });
      if (a.kind === "F") {
        const live = this.o.stages.get(a.stage)!.chunks.reduce((n, c) => n + c.liveMicrobatches, 0);
        this.peakLive.set(a.stage, Math.max(live, this.peakLive.get(a.stage) ?? 0));
      }
      this.pc += run;
      this.o.outbox.progress?.();
    }
    if (!this.o.ownsWeights) this.hold(false);
    return true;
  }

  /** `body` of action `a`; an error in it releases the weights and names the stage and action. */
  private guard<T>(a: Action, body: () => T): T {
    try {
      return body();
    } catch (e) {
      this.hold(false);
      const err = e instanceof Error ? e : new Error(String(e));
      if (err instanceof PipelineActionError) throw err;
      throw new PipelineActionError(this.worker, a.stage, formatAction(a), err.message, err.stack, err);
    }
  }

  /** Length of the run of W actions on the same stage chunk starting at index `from`. */
  private wRun(from: number): number {
    const a = this.actions[from];
    let n = 1;
    for (let b = this.actions[from + n]; b?.kind === "W" && b.stage === a.stage && b.chunk === a.chunk; b = this.actions[from + n]) n++;
    return n;
  }

  /** The message `key`, of `kind`; from a neighbouring stage (`assemble`), whole again where it came in tensor-parallel parts. */
  private take<K extends Payload["kind"]>(key: string, kind: K, assemble = false): Extract<Payload, { kind: K }> {
    let p = this.mailbox.get(key)!;
    this.mailbox.delete(key);
    if (assemble && this.o.assemble) p = this.o.assemble(p);
    if (p.kind !== kind) throw new Error(kind === "tensor" ? `message ${key} is not a tensor` : `message ${key} does not hold targets`);
    return p as Extract<Payload, { kind: K }>;
  }

  /** STEP `step` of a physical stage: its optimizer, with the hooks around it. */
  private step(phys: PhysicalStage, step: number): void {
    const hooks = this.o.hooks;
    hooks?.beforeStep?.(phys, step);
    this.o.beforeOptimizer?.(phys);
    this.hold(false, phys);
    if (phys.optimizer) {
      const stageFactor = hooks?.stageLrFactor?.(phys, step) ?? 1;
      phys.optimizer.setLrFactor(this.lrFactors[Math.min(step, this.lrFactors.length - 1)] * stageFactor);
      phys.optimizer.step();
      phys.optimizer.zeroGrad();
    }
    for (const c of phys.chunks) c.commitStatistics();
    this.hold(true, phys);
    hooks?.afterStep?.(phys, step);
  }

  private forward(phys: PhysicalStage, a: Action, keys: string[]): void {
    const { stages: S, stageToWorker } = this.o.schedule;
    const vs = virtualStage(a.stage, a.chunk, S);
    const mb = a.microbatch;
    const x = this.take(keys[0], "tensor", vs > 0);
    const targets = keys.length > 1 ? payloadTargets(this.take(keys[1], "targets")) : null;
    const input = new Tensor(x.data, x.shape);
    let r: ForwardResult;
    if (this.mode === "train") {
      this.o.hooks?.beforeForward?.(phys, a.chunk, mb);
      r = phys.chunks[a.chunk].forward(mb, input, targets);
      this.o.hooks?.afterForward?.(phys, a.chunk, mb);
    } else r = phys.chunks[a.chunk].evaluate(input, targets); // the weights as they stand (no weight versions)
    if (r.metrics) this.o.onMetrics?.(mb, r.metrics);
    if (!r.output) return;
    if (vs === S * this.o.schedule.chunks - 1) this.o.onOutput?.(mb, r.output);
    else this.o.outbox.send(stageToWorker[(vs + 1) % S], messageKey.activation(vs + 1, mb), { kind: "tensor", data: r.output.data, shape: [...r.output.shape] }, r.transferable);
  }

  private backward(phys: PhysicalStage, a: Action, keys: string[]): void {
    const { stages: S, splitBackward, stageToWorker } = this.o.schedule;
    const vs = virtualStage(a.stage, a.chunk, S);
    const mb = a.microbatch;
    const g = keys.length ? this.take(keys[0], "tensor", true).data : null;
    this.o.hooks?.beforeBackward?.(phys, a.chunk, mb);
    const gin = phys.chunks[a.chunk].backward(mb, g, splitBackward);
    this.o.hooks?.afterBackward?.(phys, a.chunk, mb);
    if (vs > 0) {
      if (!gin) throw new Error(`stage ${a.stage} produced no input gradient`);
      this.o.outbox.send(stageToWorker[(vs - 1) % S], messageKey.gradient(vs - 1, mb), { kind: "tensor", data: gin.data, shape: [...gin.shape] }, true);
    }
  }
}
