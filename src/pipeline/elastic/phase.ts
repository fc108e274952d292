// One phase of elastic training on worker threads: a fixed layout (frozen prefix, S stages x R
// replicas, M micro-batches, partition) from one transition to the next. The trainer starts a phase
// with the full training state (weights + optimizer state), runs steps, then collects the state back
// (replica 0 of each stage; all replicas hold the same bits) and closes it before the next layout.
// Moving state this way copies float32 arrays exactly, so a stage move is bit-exact.
import { MessageChannel, Worker } from "node:worker_threads";
import { getBackend } from "../../backend/index.js";
import { fromPlain, mergeStates, sliceState, toPlain, type OptimizerState } from "../../optim/index.js";
import { Tensor } from "../../tensor/tensor.js";
import { createShmGroup, type ShmGroupHandle } from "../../transport/shm-collectives.js";
import { WorkerGroup } from "../../transport/worker-group.js";
import type { ElasticWorkerInit, FromElasticWorker, StateEntry, ToElasticWorker } from "./messages.js";
import {
  combineStepReports, phaseFits, replicaMicrobatches, type PhaseLayout, type PhaseOptions, type PhaseStepResult, type TrainingPhase,
} from "./phase-contract.js";

export type { PhaseLayout, PhaseOptions, PhaseStepResult };

export class ElasticPhase implements TrainingPhase {
  private readonly threads: WorkerGroup<FromElasticWorker, ToElasticWorker>;

  private constructor(readonly layout: PhaseLayout, private readonly workers: Worker[], groups: ShmGroupHandle[]) {
    this.threads = new WorkerGroup(workers, {
      shmGroups: groups, leave: { type: "close" }, sender: (m) => m.worker,
      errors: {
        // The worker's message already names its replica and stage.
        reported: (m) => new Error(`elastic worker ${m.message}`),
        crashed: (i, e) => new Error(`elastic worker ${i} crashed: ${e.message}`),
        exited: (i, code) => new Error(`elastic worker ${i} exited unexpectedly with code ${code}`),
        unexpected: (m) => new Error(`unexpected '${m.type}' message from elastic worker ${m.worker}`),
        busy: "elastic phase: one call at a time",
        closed: "elastic phase is closed",
      },
    });
  }

  static async create(o: PhaseOptions): Promise<ElasticPhase> {
    const { stages: S, replicas: R } = o.layout;
    if (o.layout.ranges.length !== S) throw new Error(`elastic phase: ${o.layout.ranges.length} stage ranges for ${S} stages`);
    const state: StateEntry[] = [...o.state].map(([k, t]) => [k, t.data, [...t.shape]]);
    const groups = R > 1 ? o.stageParams.map((ps) => createShmGroup(R, Math.max(1, ps.reduce((t, [, n]) => t + n, 0)))) : [];
    const backend = o.backend ?? getBackend().name;
    const url = new URL("./worker.js", import.meta.url);
    const execArgv = process.execArgv.filter((a) => !a.startsWith("--input-type"));
    const workers: Worker[] = [];
    for (let r = 0; r < R; r++) {
      const ports = Array.from({ length: S - 1 }, () => new MessageChannel());
      for (let s = 0; s < S; s++) {
        const names = o.stageParams[s].map(([n]) => n);
        const optState = o.optimizerState && names.length ? toPlain(sliceState(o.optimizerState, names)) : null;
        const prev = s > 0 ? ports[s - 1].port2 : null, next = s < S - 1 ? ports[s].port1 : null;
        const init: ElasticWorkerInit = {
          spec: o.spec, seed: o.seed, backend, state, frozenLayers: o.layout.frozenLayers, prefix: o.layout.prefix,
          ranges: o.layout.ranges, stage: s, replica: r, replicas: R, microbatches: o.layout.microbatches,
          optimizer: o.optimizer, optimizerState: optState, group: R > 1 ? groups[s] : null, timeoutMs: o.timeoutMs ?? 120_000, prev, next,
        };
        workers.push(new Worker(url, { workerData: init, transferList: [prev, next].filter((p) => p !== null), execArgv, env: { ...process.env, PIPEWRIGHT_BACKEND: backend } }));
      }
    }
    const phase = new ElasticPhase(o.layout, workers, groups);
    await phase.threads.collect("ready");
    return phase;
  }

  /** Smallest replica shard of an n-example batch must hold M examples. */
  fits(n: number): boolean { return phaseFits(this.layout, n); }

  /**
   * One optimizer step on a mini-batch (x, y): sharded over replicas, each shard split into M
   * micro-batches; loss scale 1 / n (the pipeline's rule), gradients summed over replicas.
   */
  async step(x: Tensor, y: Int32Array, lrFactor: number, fill = false): Promise<PhaseStepResult> {
    if (this.threads.failure) throw this.threads.failure;
    const S = this.layout.stages;
    const done = this.threads.collect("done");
    const scale = 1 / y.length;
    replicaMicrobatches(x, y, this.layout).forEach(({ inputs: xs, targets: ys }, r) => {
      const inputs = xs.map((t) => ({ data: t.data, shape: [...t.shape] }));
      for (let s = 0; s < S; s++) {
        const msg: ToElasticWorker = {
          type: "step", lrFactor, scale, fill: fill && s === 0,
          inputs: s === 0 ? inputs : [], targets: s === S - 1 ? ys : [],
        };
        this.workers[r * S + s].postMessage(msg, [...(s === 0 ? inputs.map((i) => i.data.buffer as ArrayBuffer) : []), ...(s === S - 1 ? ys.map((t) => t.buffer as ArrayBuffer) : [])]);
      }
    });
    const replies = await done;
    return combineStepReports(this.layout, (k) => {
      const m = replies.get(k);
      if (!m || m.type !== "done") throw new Error(`elastic worker ${k} sent no result`);
      return m;
    }, fill);
  }

  /** Parameters and buffers of every stage (replica 0), named as in the full model. */
  async stateDict(): Promise<Map<string, Tensor>> {
    const S = this.layout.stages;
    const replies = this.threads.collect("state", S);
    for (let s = 0; s < S; s++) this.workers[s].postMessage({ type: "state" } satisfies ToElasticWorker);
    const out = new Map<string, Tensor>();
    for (const m of (await replies).values()) if (m.type === "state") for (const [k, d, sh] of m.entries) out.set(k, new Tensor(d, sh));
    return out;
  }

  /** Optimizer state of every stage (replica 0) merged in `order`, or null when nothing is trainable. */
  async optimizerState(order: readonly string[]): Promise<OptimizerState | null> {
    const S = this.layout.stages;
    const replies = this.threads.collect("optimizer", S);
    for (let s = 0; s < S; s++) this.workers[s].postMessage({ type: "optimizer" } satisfies ToElasticWorker);
    const got = await replies;
    const parts: OptimizerState[] = [];
    for (let s = 0; s < S; s++) { const m = got.get(s); if (m?.type === "optimizer" && m.state) parts.push(fromPlain(m.state)); }
    return parts.length ? mergeStates(parts, order) : null;
  }

  /** Asks every worker to leave; terminates the ones still running after a grace period. */
  async close(): Promise<void> {
    await this.threads.close();
  }
}

/** `base` with the entries of `update`'s parameters replaced (frozen parameters keep theirs), in `order`. */
export function combineOptimizerStates(base: OptimizerState | null, update: OptimizerState | null, order: readonly string[]): OptimizerState | null {
  if (!update) return base;
  if (!base) return update;
  const fresh = new Set(update.groups[0].params);
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of base.tensors) if (!fresh.has(k.slice(0, k.lastIndexOf(".")))) tensors.set(k, t);
  for (const [k, t] of update.tensors) tensors.set(k, t);
  const steps: Record<string, number> = {};
  for (const [k, v] of Object.entries(base.steps)) if (!fresh.has(k)) steps[k] = v;
  Object.assign(steps, update.steps);
  const known = new Set([...base.groups[0].params, ...fresh]);
  const g = update.groups[0];
  return { kind: update.kind, groups: [{ hyper: { ...g.hyper }, baseLr: g.baseLr, params: order.filter((n) => known.has(n)) }], steps, tensors };
}
