// Elastic (PipeTransformer) phases on MPI ranks, SPMD: every rank runs the same trainer (the same data,
// freeze decisions and layouts) and calls the phase's methods in the same order, so each call is
// collective. A layout of S stages x R replicas runs the processes executor on ranks k < S*R (rank k
// plays stage k % S of replica floor(k / S), Megatron's order, as the threads executor numbers its
// threads), on communicators made for that layout; freed ranks become replicas and no rank exits.
// Ranks beyond S*R (a layout AutoPipe could not fill) sit the phase out and get each result from
// rank 0, so every rank's trainer takes the same freeze decision and fills the same cache.
import { fromPlain, toPlain, type StateEntry } from "../../optim/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { ControlMailbox } from "../../transport/mpi/mailbox.js";
import { MpiCollectives } from "../../transport/mpi/collectives.js";
import { exportTorchrunEnv, launchEnv, notUnderMpiMessage } from "../../transport/mpi/env.js";
import { mpiTransport, type MpiTransport } from "../../transport/mpi/transport.js";
import { watchQuiet } from "../../transport/mpi/watchdog.js";
import { ProcessesExecutor } from "../runtime/processes.js";
import { layoutGroups } from "../runtime/process-groups.js";
import { endJob } from "../runtime/rank-failure.js";
import { entryTensors } from "../runtime/worker-state.js";
import type { PhaseExecutor } from "./phase.js";
import type { PipelineSetup } from "../runtime/setup.js";

/** The job's MPI world for a freeze run: every rank, in rank order. */
interface ElasticWorld {
  mpi: MpiTransport;
  world: MpiCollectives;
}

let started: { workers: number; world: Promise<ElasticWorld> } | null = null;

/** Starts MPI for a freeze run of `workers` workers: one rank per worker (a collective call). */
function elasticWorld(workers: number): Promise<ElasticWorld> {
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

/** A layout's executor on the MPI ranks of a freeze run of `workers` workers (collective). */
export async function mpiPhase(workers: number, setup: PipelineSetup, state: ReadonlyMap<string, Tensor>, replicas: number): Promise<PhaseExecutor> {
  const w = await elasticWorld(workers);
  const layout = { tensor: 1, workers: setup.schedule.stages, replicas };
  const g = await layoutGroups(w.mpi, layout, (at) => `replica ${at.replica}, stage ${at.worker}`);
  const ex = g ? await ProcessesExecutor.create(setup, { state }, replicas, g) : null;
  return ex && layout.workers * replicas === w.mpi.size ? ex : new WithIdleRanks(ex, w);
}

/** A layout that leaves ranks idle: they take each result from rank 0 (always active). */
class WithIdleRanks implements PhaseExecutor {
  constructor(private readonly ex: ProcessesExecutor | null, private readonly w: ElasticWorld) {}

  /** Rank 0's result of `call` on every rank; `wire` turns it into what crosses MPI (plain arrays, no class instances) and back. */
  private async shared<T, W = T>(what: string, call: (ex: ProcessesExecutor) => Promise<T>,
    wire: { out(v: T): W; in(w: W): T } = { out: (v) => v as unknown as W, in: (w) => w as unknown as T }): Promise<T> {
    const mine = this.ex ? wire.out(await call(this.ex)) : undefined;
    const got = await watchQuiet(this.w.mpi, () => this.w.world.broadcast(mine, 0),
      (limit) => endJob(this.w.mpi, new Error(`watchdog: nothing arrived for ${limit} s; waiting in ${what} for the other ranks (one of them is stopped, hung or slower than the timeout)`), "idle in this layout"));
    return wire.in(got);
  }

  step: PhaseExecutor["step"] = (b, f) => this.shared("a step", (ex) => ex.step(b, f));
  evaluate: PhaseExecutor["evaluate"] = (b, s) => this.shared("an evaluation", (ex) => ex.evaluate(b, s));
  predict: PhaseExecutor["predict"] = (xs) => this.shared("a prediction", (ex) => ex.predict(xs), {
    out: (ts) => ts.map((t): [Float32Array, number[]] => [t.data, [...t.shape]]),
    in: (ts: [Float32Array, number[]][]) => ts.map(([d, sh]) => new Tensor(d, sh)),
  });
  stateDict: PhaseExecutor["stateDict"] = () => this.shared("the weight gather", (ex) => ex.stateDict(), {
    out: (m) => [...m].map(([k, t]): StateEntry => [k, t.data, [...t.shape]]),
    in: entryTensors,
  });
  optimizerState: PhaseExecutor["optimizerState"] = (o) => this.shared("the optimizer-state gather", (ex) => ex.optimizerState(o), { out: toPlain, in: fromPlain });
  loadStateDict: PhaseExecutor["loadStateDict"] = (s) => this.shared("the weight load", (ex) => ex.loadStateDict(s));
  close: PhaseExecutor["close"] = () => this.shared("the end of a layout", (ex) => ex.close());
}
