// The processes executor: this OS process is one MPI rank = one pipeline worker; it runs its action
// list through the same WorkerInterpreter as the other executors, and activations and gradients go
// to the neighbour ranks over MPI (src/transport/mpi). Every rank runs the same training script
// (SPMD) and calls step/stateDict/... in the same order; the calls are collective. The first
// stage's rank uses the inputs, the last stage's rank the targets; metrics, weights and optimizer
// state are gathered on every rank so that each holds the same results (rank 0 alone prints and
// writes). An error in an action writes one line naming rank, stage, action and cause, then ends
// the whole job through MPI_Abort (no rank is left waiting).
import { cpus } from "node:os";
import { launchEnv } from "../../transport/mpi/env.js";
import { Tensor } from "../../tensor/tensor.js";
import type { MicrobatchMetrics, Target } from "../stage.js";
import { preparedInOrder } from "./input-hook.js";
import { checkBatches, type Executor, type PreparedInput, type SplitBatch, type StepResult } from "./executor.js";
import { type ForwardMode, type Payload, type PhysicalStage, type WorkerInterpreter } from "./interpreter.js";
import { forwardOnlyLists } from "../schedule/forward-only.js";
import { forwardDeliveries, stepDeliveries, type ReplicaPosition } from "./replica-share.js";
import type { Action } from "../schedule/action.js";
import { assertValidSchedule } from "../schedule/validate.js";
import { buildWorker, type BuiltWorker, type WorkerWeights } from "./worker-build.js";
import { WorkerLoop } from "./worker-loop.js";
import { entryTensors, inUnitOrder, shareState, stageEntries, stageOptimizerStates, unitsPerWorker } from "./worker-state.js";
import { expectedUnitPrefix, type PipelineModel } from "./model-source.js";
import { replicatedSetup, sourceOf, type PipelineSetup } from "./setup.js";
import { mergeAsyncStates, type AsyncState } from "./async-state.js";
import { fromPlain, mergeStates, toPlain, type OptimizerState, type PlainOptimizerState, type StateEntry } from "../../optim/index.js";
import { TAG } from "../../transport/mpi/transport.js";
import { payloadOfFrame, sendPayload } from "./payload-frame.js";
import { startGroups, type Groups } from "./process-groups.js";
export { agreeOnRank0, startGroups } from "./process-groups.js";
import { describeWait, endJob, placeParts } from "./rank-failure.js";
import { watchQuiet } from "../../transport/mpi/watchdog.js";
import { forReplica } from "./instrumentation.js";
import { reduceStage } from "./replica-reduce.js";
import { nestedNormGroup } from "./grad-clip.js";
import type { LocalState, LocalStateSource } from "./local-state.js";
import { epochNow, MessageLog, onEpoch, type ClockSync, type MessageRecord, type TimingSource } from "./action-records.js";
import { syncClocks } from "./clock-sync.js";
import { tensorSize } from "./tensor-stages.js";
import { ListExecutor, sumMetrics, type ForwardShare, type ListResults } from "./list-results.js";
import { memoryBytes, memoryRecord, type MemoryBytes } from "./memory.js";
import { positionOf } from "../../transport/mpi/layout.js";
import { gatherStateDict } from "../../parallel/tp-shard.js";
import { gatherOptimizerState } from "../../parallel/ptdp-units.js";
export type { RankTimings } from "./action-records.js";

/** A rank's model to train in place, or the whole initial state to take its share of. */
export type InitialWeights = { state: ReadonlyMap<string, Tensor> } | { model: PipelineModel };

/** A rank's part of a step's result in the end-of-step exchange (see doneInfo). */
interface DoneInfo { memory: MemoryBytes; metrics?: [number, MicrobatchMetrics][]; busy?: number; peaks?: [number, number][]; gradSquares?: [number, number][]; prepared?: PreparedInput[] }

/** The longest a blocked rank polls MPI itself before it waits on the event loop (ms). */
const SPIN_BUDGET_MS = 50;
/** Polling rounds of a tensor-parallel rank waiting inside a list (ms). */
const JS_POLL_ROUND_MS = 2;

export class ProcessesExecutor extends ListExecutor implements Executor, LocalStateSource, TimingSource {
  readonly name = "processes" as const;
  readonly traceProcess = "rank" as const;
  private interp!: WorkerInterpreter;
  private loop!: WorkerLoop;
  /** This rank's worker: its plan over the tensor group, asynchronous state, input hook and results. */
  private built!: BuiltWorker;
  private finished: (() => void) | null = null;
  private closed = false;
  /** What this rank waits for inside a collective call (the watchdog names it). */
  private waitingIn = "";
  /**
   * Message and step timings (instrumentation.recordActions only). Messages are logged from the end
   * of one step to the end of the next: a neighbour's first message of a step may arrive before
   * this rank enters it.
   */
  private readonly rec: { log: MessageLog; begin: number; listDone: number; collectives: MessageRecord[] } | null;
  /** Every rank's clock against rank 0's, measured at start-up (recordActions only). */
  private clocks: ClockSync[] | null = null;

  /** How long a blocked rank polls MPI itself in one round (ms; 0: never; PIPEWRIGHT_MPI_SPIN_MS). */
  private readonly spinMs: number;
  /** Whether this thread polls MPI itself for the whole of each list (tensor parallelism). */
  private readonly jsPolls: boolean;

  private constructor(protected readonly setup: PipelineSetup, private readonly g: Groups) {
    super();
    const env = launchEnv();
    // Off unless asked for: a polling rank can slow its neighbours' computation more than the faster
    // hand-over saves (the main job ran far slower on a 2-vCPU machine).
    const spin = Number(process.env.PIPEWRIGHT_MPI_SPIN_MS ?? 0);
    this.spinMs = env && env.localSize > 0 && env.localSize <= cpus().length && spin > 0 ? spin : 0;
    // A tensor-parallel layer waits for its group inside an action (MpiSyncCollectives), polling MPI
    // itself: no message may then sit in the event loop's queue, so while a list runs this thread
    // receives every message itself (the communication thread only sends).
    this.jsPolls = g.layout.tensor > 1;
    if (this.jsPolls) this.spinMs ||= JS_POLL_ROUND_MS;
    this.rec = setup.instrumentation?.recordActions ? { log: new MessageLog(), begin: 0, listDone: 0, collectives: [] } : null;
  }

  get rank(): number { return this.g.mpi.rank; }

  private get position(): ReplicaPosition { return { ...this.g.at, replicas: this.g.layout.replicas }; }

  /**
   * Collective: every rank keeps its worker's stages, built on `initial.model` (this process's copy
   * of the model, whose units they then train in place: the caller must not change it while the
   * executor runs) or on a model built from the setup's source and loaded with its share of
   * `initial.state`. With `replicas` R > 1 the job runs R copies of the pipeline (world = workers x
   * R); each takes its share of every micro-batch's rows, and gradients are summed over replicas
   * before STEP. `groups`: communicators the caller made for this layout (default: the run's, made once).
   */
  static async create(setup: PipelineSetup, initial: InitialWeights, replicas = 1, groups?: Groups): Promise<ProcessesExecutor> {
    setup = replicatedSetup(setup, replicas);
    assertValidSchedule(setup.schedule);
    const T = tensorSize(setup), W = setup.schedule.workers.length;
    const g = groups ?? await startGroups(W, replicas, T);
    await assertSameSetup(g, setup);
    const ex = new ProcessesExecutor(setup, g);
    await ex.build(initial);
    g.mpi.onError = (e) => ex.die(e);
    g.mpi.listen(g.pipeComm, TAG.pipe, (_src, data) => ex.onPipe(data));
    await g.world.barrier(); // every rank ready before the first activation flies
    // Recorded runs put every rank on rank 0's time axis (the trace merges them).
    if (ex.rec) ex.clocks = await ex.watched("the clock synchronisation", () => syncClocks(g.mpi, g.world));
    return ex;
  }

  /**
   * This rank's stages, on the model its source builds (every rank imports the same module, SPMD),
   * loaded with its units' share of the state (as a worker thread's).
   */
  private async build(initial: InitialWeights): Promise<void> {
    const { setup } = this;
    const w = this.g.at.worker;
    let weights: WorkerWeights, su = { ...setup, instrumentation: forReplica(setup.instrumentation, this.g.at.replica) };
    if ("model" in initial) weights = { model: initial.model };
    else {
      const share = shareState(initial.state, expectedUnitPrefix(sourceOf(setup)), unitsPerWorker(setup.balance, setup.schedule), setup.optimizerState)[w];
      weights = { share };
      su = { ...su, optimizerState: share.optimizerState };
    }
    const outbox = { send: (to: number, key: string, payload: Payload) => this.sendPipe(to, key, payload), progress: () => this.g.mpi.progress() };
    this.built = await buildWorker(su, w, weights, outbox,
      { reduce: (ps) => this.reduceGradients(ps), wake: () => { if (!this.polling) this.loop.pump(); }, tensor: this.g.tensorSync,
        norm: nestedNormGroup(this.g.layout.tensor > 1 ? this.g.tensorSync : null, this.g.pipe) });
    this.interp = this.built.interp;
    this.loop = new WorkerLoop(this.interp, {
      finished: () => {
        const f = this.finished!;
        this.finished = null;
        if (this.jsPolls) this.g.mpi.threadState("waiting"); // the collectives after a list await
        f();
      },
      fail: (e) => this.die(e),
      // A tensor-parallel rank keeps polling MPI itself while it computes (see jsPolls).
      beforePump: () => this.g.mpi.threadState(this.jsPolls ? "polling" : "computing"),
      blocked: () => this.blocked(),
      idleBetweenLists: false,
    });
  }

  /** REDUCE: the stage's gradients and BatchNorm moments summed over the replicas (the data group's fixed order), in place. */
  private async reduceGradients(ps: PhysicalStage): Promise<void> {
    const t0 = epochNow();
    const bytes = await reduceStage(ps, (buf) => this.g.data.allReduce(buf, "sum"));
    this.rec?.collectives.push({ key: "allreduce", bytes, at: t0, ms: epochNow() - t0 });
  }

  private sendPipe(to: number, key: string, payload: Payload): void {
    const t0 = epochNow();
    const bytes = sendPayload(this.g.mpi, this.g.pipeComm, to, key, payload);
    this.rec?.log.send(key, bytes, t0);
  }

  private onPipe(data: ArrayBuffer): void {
    if (this.closed) return;
    const t0 = epochNow();
    try {
      const { key, payload, bytes } = payloadOfFrame(data);
      this.interp.deliver(key, payload);
      this.rec?.log.receive(key, bytes, t0);
    } catch (e) { this.die(e); }
    if (!this.polling) this.loop.pump();
  }

  /** Inside this thread's own poll: a message's arrival must not pump (the poll pumps when it ends). */
  private polling = false;
  /** When the current wait for a message began (performance.now()). */
  private waitStart = 0;

  /** Blocked on a message: poll MPI on this thread (spinMs > 0), or leave the core to the communication thread. */
  private blocked(): boolean {
    if (this.spinMs > 0) {
      this.waitStart = performance.now();
      this.g.mpi.threadState("polling");
      setImmediate(() => this.pollRound());
      return true;
    }
    // This rank's core is free for the communication thread to poll hot.
    this.g.mpi.threadState("waiting");
    return false;
  }

  /**
   * Blocked on a message where every local rank has a core of its own: this thread polls MPI itself,
   * so a message is handed over the moment it completes, not after a hop through the event loop.
   * In rounds of spinMs, each after one unit of background work, with the event loop's turn (timers,
   * the watchdog) between them; after SPIN_BUDGET_MS it waits on the event loop instead.
   */
  private pollRound(): void {
    if (!this.loop.busy || this.closed) return;
    if (this.interp.ready) { this.loop.pump(); return; }
    let ready = false;
    this.polling = true;
    try {
      this.interp.idle();
      const until = performance.now() + this.spinMs;
      do {
        this.g.mpi.receive();
        ready = this.interp.ready;
      } while (!ready && performance.now() < until);
    } catch (e) { this.die(e); } finally { this.polling = false; }
    if (ready) this.loop.pump();
    else if (this.jsPolls || performance.now() - this.waitStart < SPIN_BUDGET_MS) setImmediate(() => this.pollRound());
    else { this.g.mpi.threadState("waiting"); this.loop.idleSoon(); }
  }

  /** Ends the job: one line naming this rank (and the stage and action), then MPI_Abort. */
  private die(e: unknown): never {
    const { layout, at } = this.g;
    return endJob(this.g.mpi, e, this.g.where ?? placeParts(at, layout, layout.replicas > 1 || layout.tensor > 1).join(", "));
  }

  /** `body` under the watchdog (launch --timeout): a quiet rank ends the job naming what it waits for. */
  private async watched<T>(what: string, body: () => Promise<T>): Promise<T> {
    this.waitingIn = what;
    try {
      return await watchQuiet(this.g.mpi, body, (limit) => this.die(new Error(`watchdog: nothing arrived for ${limit} s; ${this.describeWait()}`)));
    } finally { this.waitingIn = ""; }
  }

  private describeWait(): string {
    const { stageToWorker, stages: S } = this.setup.schedule;
    const { workers: W, replicas: R, tensor: T } = this.g.layout, { worker, replica, tensor } = this.g.at;
    const next = this.loop.busy ? this.interp.next : null;
    return describeWait(this.g.mpi.rank, next, next ? this.interp.waits() : [], this.waitingIn, {
      ofStage: (v) => (replica * W + stageToWorker[v % S]) * T + tensor,
      ofReplicas: () => Array.from({ length: R }, (_, r) => (r * W + worker) * T + tensor).filter((k) => k !== this.g.mpi.rank),
    });
  }

  async run(batches: readonly SplitBatch[], lrFactors: readonly number[] = [1]): Promise<StepResult> {
    const { schedule } = this.setup;
    const M = schedule.microbatches, S = schedule.stages;
    checkBatches(batches, M, schedule.steps);
    if (this.rec) Object.assign(this.rec, { begin: epochNow(), collectives: [] });
    for (const [key, payload] of stepDeliveries(schedule, batches, this.position)) this.interp.deliver(key, this.built.inputHook.apply(payload));
    const { metrics } = await this.runList(schedule.workers[this.g.at.worker], lrFactors, "train", "a step");
    if (this.rec) this.rec.listDone = epochNow();
    const prepare = batches.some((x) => x.prepare);
    const done = await this.watched("the end-of-step exchange", () => this.g.world.allGather(this.doneInfo(metrics, prepare)));
    if (this.rec) {
      const { rank } = this.g.mpi, { worker, replica } = this.g.at, { begin, listDone, collectives } = this.rec;
      this.last = [{ rank, worker, replica, actions: onEpoch(this.interp.records), ...this.rec.log.take(), collectives, begin, listDone,
        end: epochNow(), ...(this.clocks ? { clock: this.clocks[rank] } : {}) }];
    }
    const { layout } = this.g, first = done.filter((d) => d.busy !== undefined);
    // Replica order: the ranks' order.
    return { ...sumMetrics(M * batches.length, done.map((d) => d.metrics ?? []), layout.replicas, first.map((d) => d.busy!), first.flatMap((d) => d.peaks!), S),
      memory: done.map((d, rank) => memoryRecord(schedule, positionOf(rank, layout), d.memory)),
      ...(this.setup.gradientNorms ? { gradSquares: first.flatMap((d) => d.gradSquares!) } : {}),
      ...(prepare ? { prepared: preparedInOrder(done.flatMap((d) => d.prepared ?? [])) } : {}) };
  }

  /**
   * This rank's part of the step's result, only what the step reports: metrics from a worker's tensor
   * rank 0 (the others compute the same loss), busy seconds and peaks from replica 0's (the others mirror them).
   */
  private doneInfo(metrics: [number, MicrobatchMetrics][], prepare: boolean): DoneInfo {
    const b = this.interp.busy, prep = this.built.inputHook.take(), gradSquares = this.built.takeGradSquares();
    const lead = this.g.at.tensor === 0, first = lead && this.g.at.replica === 0;
    return {
      memory: memoryBytes(this.interp), ...(lead && metrics.length ? { metrics } : {}),
      ...(first ? { busy: b.F + b.B + b.W + b.STEP + prep.seconds, peaks: [...this.interp.peakLive] } : {}),
      ...(first && this.setup.gradientNorms ? { gradSquares } : {}), ...(lead && prepare ? { prepared: prep.prepared } : {}),
    };
  }

  /** Runs `actions` (delivered inputs) to their end and returns what they reported: collective with the pipeline's other ranks. */
  private async runList(actions: readonly Action[], lrFactors: readonly number[], mode: ForwardMode, what: string): Promise<Pick<ListResults, "metrics" | "outputs">> {
    this.interp.reset(lrFactors, actions, mode);
    // Evaluation messages are not part of any step's record (a failed list ends the job).
    if (this.rec) this.rec.log.paused = mode !== "train";
    await this.watched(what, async () => {
      if (this.jsPolls) {
        this.g.mpi.threadState("polling");
        // Messages the communication thread handed to the event loop before it stopped polling
        // (receive() waits for its last poll, and takes the ones whose events have not run) reach
        // their handlers before the list starts.
        this.g.mpi.receive();
      }
      await new Promise<void>((resolve) => { this.finished = resolve; this.loop.start(); });
    });
    if (this.rec) this.rec.log.paused = false;
    return this.built.results.take();
  }

  /**
   * Every replica's share of a forward-only list over `inputs`, on every rank (evaluate and predict are
   * collective). Replica r runs micro-batches r, r+R, ...
   */
  protected async forwardOnly(inputs: readonly Tensor[], labels: readonly Target[] | null, scale: number, mode: "eval" | "predict"): Promise<ForwardShare[]> {
    const { ids, deliveries } = forwardDeliveries(this.setup.schedule, inputs, labels, scale, this.position);
    for (const [key, payload] of deliveries) this.interp.deliver(key, this.built.inputHook.forward(payload));
    const [what, gather] = mode === "eval" ? ["an evaluation", "the evaluation results"] : ["a prediction", "the prediction results"];
    const mine: ForwardShare = { ids, ...await this.runList(forwardOnlyLists(this.setup.schedule, ids.length)[this.g.at.worker], [1], mode, what) };
    return (await this.watched(gather, () => this.g.world.allGather(this.g.at.tensor === 0 ? [mine] : []))).flat();
  }

  async stateDict(): Promise<Map<string, Tensor>> {
    const mine = stageEntries(this.interp.stages.values());
    const shards = await this.watched("the tensor-parallel weight gather", () => this.g.tensor.allGather(mine));
    const whole: StateEntry[] = [...gatherStateDict(shards.map(entryTensors), this.built.plan)]
      .map(([k, t]) => [k, t.data, [...t.shape]]);
    const all = (await this.watched("the weight gather", () => this.g.pipe.allGather(whole))).flat();
    return entryTensors(inUnitOrder(all, expectedUnitPrefix(sourceOf(this.setup))));
  }

  async optimizerState(order: readonly string[]): Promise<OptimizerState> {
    const shards = stageOptimizerStates(this.interp.stages.values()).map(toPlain);
    const ranks = await this.watched("the tensor-parallel optimizer-state gather", () => this.g.tensor.allGather(shards));
    const mine = shards.map((_, j) => gatherOptimizerState(ranks.map((r) => r[j]), this.built.plan));
    const parts = (await this.watched("the optimizer-state gather", () => this.g.pipe.allGather<PlainOptimizerState[]>(mine))).flat();
    return mergeStates(parts.map(fromPlain), order);
  }

  async asyncState(): Promise<AsyncState | null> {
    return mergeAsyncStates(await this.watched("the asynchronous-state gather", () => this.g.pipe.allGather(this.built.asyncRuntime?.snapshot() ?? null)));
  }

  /** This rank's own stages, optimizer and asynchronous state (no communication): a checkpoint part. */
  localState(): LocalState {
    // A part holds single-device tensors; a tensor-parallel rank holds shards.
    if (this.g.layout.tensor > 1) throw new Error(`checkpoint parts of a tensor-parallel run (--tp ${this.g.layout.tensor}) are not supported; save the whole checkpoint`);
    const S = this.setup.schedule.stages;
    const stages = [...this.interp.stages.values()].flatMap((ps) => ps.chunks.map((c, chunk) => ({ stage: chunk * S + ps.index, state: c.stateDict() })));
    return {
      rank: this.g.mpi.rank, writes: this.g.at.replica === 0,
      stages: stages.sort((a, b) => a.stage - b.stage),
      optimizer: stageOptimizerStates([...this.interp.stages.values()].sort((a, b) => a.index - b.index)),
      async: this.built.asyncRuntime?.snapshot() ?? null,
    };
  }

  async loadStateDict(state: ReadonlyMap<string, Tensor>): Promise<void> {
    this.built.load(state);
    // Collective: no rank steps on before every rank has its new weights.
    await this.watched("the weight load", () => this.g.world.barrier());
  }

  gatherAll<T>(value: T, what: string): Promise<T[]> { return this.watched(what, () => this.g.world.allGather(value)); }

  barrier(what: string): Promise<void> { return this.watched(what, () => this.g.world.barrier()); }

  /** Collective: no pipeline message of this executor is in flight once every rank is here. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.interp.abandon();
    await this.g.world.barrier();
    this.closed = true;
    this.loop.stop();
    for (const ps of this.interp.stages.values()) for (const c of ps.chunks) c.clear();
  }
}

/** SPMD: every rank must have built the same setup (a differing flag or file would desynchronise them). */
async function assertSameSetup(g: Groups, setup: PipelineSetup): Promise<void> {
  const { optimizerState: _o, ...shape } = setup;
  const mine = JSON.stringify(shape);
  const other = (await g.world.allGather(mine)).findIndex((s) => s !== mine);
  if (other >= 0) throw new Error(`rank ${g.mpi.rank} and rank ${other} built different pipelines (schedule, partition or options differ); every rank must run the same command`);
}
