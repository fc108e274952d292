// One phase of elastic (PipeTransformer) training on MPI ranks, SPMD: every rank runs the same
// trainer (the same data, freeze decisions and layouts) and calls the phase's methods in the same
// order, so each call is collective. In a layout of S stages x R replicas, rank k < S*R plays stage
// k % S of replica floor(k / S) (Megatron's order, as the threads phase numbers its workers); ranks
// beyond S*R (a layout AutoPipe could not fill) wait in the collectives. Each phase splits its own
// communicators: the pipeline of its replica (activations and gradients, ranks = stages) and the
// data group of its stage (gradient all-reduce, ranks = replicas, summed in replica order as the
// threads phase's shared memory does). Step reports (losses, busy time, the freeze policy's
// gradient norms, the cache's prefix outputs) are all-gathered, so every rank's trainer takes the
// same freeze decision and fills the same cache. A transition gathers weights and optimizer state
// on every rank (stateDict / optimizerState) and the next phase builds its stages from them: freed
// ranks become replicas and no rank exits.
import { allReduceGradients } from "../../parallel/grad-sync.js";
import { fromPlain, mergeStates, sliceState, toPlain, type OptimizerState, type PlainOptimizerState, type StateEntry } from "../../optim/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { ControlMailbox } from "../../transport/mpi/mailbox.js";
import { MpiCollectives } from "../../transport/mpi/collectives.js";
import { exportTorchrunEnv, launchEnv, notUnderMpiMessage } from "../../transport/mpi/env.js";
import { payloadOfFrame, sendPayload } from "../runtime/payload-frame.js";
import { mpiTransport, TAG, type MpiTransport } from "../../transport/mpi/transport.js";
import type { MicrobatchMetrics } from "../stage.js";
import { messageKey, type Payload } from "../runtime/interpreter.js";
import { describeWait, endJob } from "../runtime/rank-failure.js";
import { testSeam } from "../../testing/seam.js";
import {
  combineStepReports, phaseFits, replicaMicrobatches, type PhaseFactory, type PhaseLayout, type PhaseOptions, type PhaseStepResult,
  type TrainingPhase, type WorkerStepReport,
} from "./phase-contract.js";
import { buildElasticStage, type ElasticStage } from "./stage-build.js";
import { watchQuiet } from "../../transport/mpi/watchdog.js";
import { WorkerLoop } from "../runtime/worker-loop.js";

/** The job's MPI world for a freeze run: every rank, in rank order. */
export interface ElasticWorld {
  mpi: MpiTransport;
  world: MpiCollectives;
}

let started: { workers: number; world: Promise<ElasticWorld> } | null = null;

/** Starts MPI for a freeze run of `workers` workers: one rank per worker (a collective call). */
export function elasticWorld(workers: number): Promise<ElasticWorld> {
  if (!launchEnv()) throw new Error(notUnderMpiMessage(workers));
  if (started && started.workers !== workers) throw new Error(`this process already runs a freeze job of ${started.workers} workers, not ${workers}`);
  started ??= {
    workers,
    world: (async () => {
      const mpi = mpiTransport();
      if (mpi.size !== workers) {
        throw new Error(`the job has ${mpi.size} MPI rank(s) but --freeze --workers ${workers} needs ${workers} (one rank per worker; ` +
          `ranks freed by a shorter pipeline become replicas); start it with -n ${workers} or give --workers ${mpi.size}`);
      }
      exportTorchrunEnv(mpi.rank, mpi.size, launchEnv()?.localRank ?? 0);
      const comm = await mpi.split(0, 0, mpi.rank); // its own communicator: no tag meets another executor's
      return { mpi, world: new MpiCollectives(new ControlMailbox(mpi, comm)) };
    })(),
  };
  return started.world;
}

/** The trainer's phase factory for MPI ranks. */
export function mpiPhaseFactory(workers: number): PhaseFactory {
  return async (o) => MpiElasticPhase.create(o, await elasticWorld(workers));
}

/** This rank's part of a layout: its stage and replica, and what it runs them with. */
interface Role {
  stage: number;
  replica: number;
  built: ElasticStage;
}

export class MpiElasticPhase implements TrainingPhase {
  private role: Role | null = null;
  private metrics: [number, MicrobatchMetrics][] = [];
  private gradSq: [number, number][] = [];
  private finished: (() => void) | null = null;
  private loop: WorkerLoop | null = null;
  private closed = false;

  private constructor(readonly layout: PhaseLayout, private readonly w: ElasticWorld) {}

  /** Collective: splits the layout's communicators and builds this rank's stage from the trainer's state. */
  static async create(o: PhaseOptions, w: ElasticWorld): Promise<MpiElasticPhase> {
    const { stages: S, replicas: R } = o.layout;
    if (o.layout.ranges.length !== S) throw new Error(`elastic phase: ${o.layout.ranges.length} stage ranges for ${S} stages`);
    if (S * R > w.mpi.size) throw new Error(`elastic phase: ${S} stages x ${R} replicas need ${S * R} ranks, the job has ${w.mpi.size}`);
    const phase = new MpiElasticPhase(o.layout, w);
    const k = w.mpi.rank, active = k < S * R;
    const s = k % S, r = Math.floor(k / S);
    // MPI_Comm_split is collective over every rank, in this order; an idle rank gets a color of its own.
    const pipeComm = await w.mpi.split(0, active ? r : R + k, active ? s : 0);
    const dataComm = await w.mpi.split(0, active ? s : S + k, active ? r : 0);
    if (active) {
      try {
        const data = R > 1 ? new MpiCollectives(new ControlMailbox(w.mpi, dataComm)) : null;
        phase.role = { stage: s, replica: r, built: phase.build(o, s, pipeComm, data) };
      } catch (e) { phase.die(e); }
      w.mpi.listen(pipeComm, TAG.pipe, (_src, data) => phase.onPipe(data));
    }
    await phase.watched("the start of a layout", () => w.world.barrier()); // every stage built before the first activation flies
    return phase;
  }

  private build(o: PhaseOptions, s: number, pipeComm: number, data: MpiCollectives | null): ElasticStage {
    const names = o.stageParams[s].map(([n]) => n);
    const optimizerState: PlainOptimizerState | null = o.optimizerState && names.length ? toPlain(sliceState(o.optimizerState, names)) : null;
    const outbox = {
      send: (to: number, key: string, payload: Payload): void => {
        if (payload.kind !== "tensor") throw new Error(`elastic rank: only tensors travel between stages, got ${payload.kind}`);
        sendPayload(this.w.mpi, pipeComm, to, key, payload);
      },
    };
    const built = buildElasticStage({ ...o, ...o.layout, stage: s, optimizerState, faults: testSeam.faults }, outbox, {
      reduce: data ? (params) => allReduceGradients(params, data) : undefined,
      wake: () => this.loop?.pump(),
      beforeStep: () => { if (this.role?.replica === 0) this.gradSq = this.role.built.gradSquares(); },
    }, (mb, m) => { this.metrics.push([mb, m]); });
    this.loop = new WorkerLoop(built.interp, { finished: () => { const f = this.finished!; this.finished = null; f(); }, fail: (e) => this.die(e) });
    return built;
  }

  private onPipe(data: ArrayBuffer): void {
    if (this.closed || !this.role) return;
    try {
      const { key, payload } = payloadOfFrame(data);
      if (payload.kind !== "tensor") throw new Error(`elastic rank: unexpected ${payload.kind} message ${key}`);
      this.role.built.interp.deliver(key, payload);
    } catch (e) { this.die(e); }
    this.loop?.pump();
  }

  /** Ends the job: one line naming this rank, its stage and replica (and the action), then MPI_Abort. */
  private die(e: unknown): never {
    return endJob(this.w.mpi, e, this.role ? `replica ${this.role.replica}, stage ${this.role.stage}` : "");
  }

  fits(n: number): boolean { return phaseFits(this.layout, n); }

  /** Collective: one optimizer step on (x, y), every rank passing the same batch (SPMD). */
  async step(x: Tensor, y: Int32Array, lrFactor: number, fill = false): Promise<PhaseStepResult> {
    if (this.closed) throw new Error("elastic phase is closed");
    const mine: WorkerStepReport = { metrics: [], busy: 0, gradSq: [], prefixOut: [] };
    const role = this.role;
    if (role) {
      try { await this.watched("a step", () => this.run(role, x, y, lrFactor, fill, mine)); } catch (e) { this.die(e); }
    }
    const all = await this.watched("the end-of-step exchange", () => this.w.world.allGather(mine));
    return combineStepReports(this.layout, (k) => all[k], fill);
  }

  /** `body` under the watchdog (launch --timeout): a quiet rank ends the job naming what it waits for. */
  private watched<T>(what: string, body: () => Promise<T>): Promise<T> {
    return watchQuiet(this.w.mpi, body, (limit) => this.die(new Error(`watchdog: nothing arrived for ${limit} s; ${this.describeWait(what)}`)));
  }

  private describeWait(what: string): string {
    const r = this.role, next = this.loop?.busy && r ? r.built.interp.next : null;
    const { stages: S, replicas: R } = this.layout;
    return describeWait(this.w.mpi.rank, next, next && r ? r.built.interp.waits() : [], what, {
      ofStage: (v) => (r?.replica ?? 0) * S + v,
      ofReplicas: (s) => Array.from({ length: R }, (_, k) => k * S + s).filter((k) => k !== this.w.mpi.rank),
    });
  }

  /** This rank's list on its inputs or targets (its REDUCE sums the gradients over the stage's replicas before STEP). */
  private async run(role: Role, x: Tensor, y: Int32Array, lrFactor: number, fill: boolean, out: WorkerStepReport): Promise<void> {
    const { stages: S } = this.layout;
    const { built, stage: s } = role;
    const { interp } = built;
    const t0 = performance.now();
    const { inputs, targets } = replicaMicrobatches(x, y, this.layout)[role.replica];
    if (s === 0) {
      inputs.forEach((t0j, j) => {
        let t = t0j;
        if (fill) {
          t = built.runPrefix(t);
          out.prefixOut.push({ data: t.data.slice(), shape: [...t.shape] });
        }
        interp.deliver(messageKey.activation(0, j), { kind: "tensor", data: t.data, shape: [...t.shape] });
      });
    }
    if (s === S - 1) targets.forEach((t, j) => interp.deliver(messageKey.targets(j), { kind: "targets", labels: t, scale: 1 / y.length }));
    this.gradSq = [];
    this.metrics = [];
    interp.reset([lrFactor], built.actions);
    const prefixSeconds = (performance.now() - t0) / 1000; // the prefix's forward counts as this stage's work
    await new Promise<void>((resolve) => { this.finished = resolve; this.loop!.start(); });
    const b = interp.busy;
    const busy = prefixSeconds + b.F + b.B + b.W + b.STEP;
    out.metrics = this.metrics.splice(0);
    out.busy = busy;
    out.gradSq = this.gradSq;
  }

  /** Collective: parameters and buffers of every stage (replica 0's ranks), on every rank. */
  async stateDict(): Promise<Map<string, Tensor>> {
    const r = this.role;
    const mine: StateEntry[] = r && r.replica === 0 ? [...r.built.stage.stateDict()].map(([k, t]) => [k, t.data.slice(), [...t.shape]]) : [];
    const out = new Map<string, Tensor>();
    for (const part of await this.watched("the weight gather", () => this.w.world.allGather(mine))) for (const [k, d, sh] of part) out.set(k, new Tensor(d, sh));
    return out;
  }

  /** Collective: optimizer state of every stage (replica 0's ranks, stage order) merged in `order`. */
  async optimizerState(order: readonly string[]): Promise<OptimizerState | null> {
    const r = this.role;
    const mine = r && r.replica === 0 && r.built.optimizer ? toPlain(r.built.optimizer.stateDict()) : null;
    const parts = (await this.watched("the optimizer-state gather", () => this.w.world.allGather<PlainOptimizerState | null>(mine))).filter((p): p is PlainOptimizerState => p !== null);
    return parts.length ? mergeStates(parts.map(fromPlain), order) : null;
  }

  /** Collective: no message of this phase is in flight once every rank is here. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.role?.built.interp.abandon();
    this.loop?.stop();
    await this.watched("the end of a layout", () => this.w.world.barrier());
    this.closed = true;
    this.role = null;
  }
}


