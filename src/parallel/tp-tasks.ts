// Tasks that tp-runner.ts runs on every rank of a tensor-parallel group:
// - checkBlock: a tensor-parallel MLP / attention / transformer block (optionally sequence-parallel),
//   started from a single-device module's state dict, one forward + backward; returns this rank's
//   output, input gradient and parameter gradients (shards) so the caller can compare them with the
//   single-device module after gatherStateDict.
// - benchMlp: timed steps (forward, backward, SGD update) of a tensor-parallel MLP block.
import { backward } from "../autograd/engine.js";
import { GELU } from "../nn/activation.js";
import { Linear } from "../nn/linear.js";
import { Module, Sequential } from "../nn/module.js";
import { createOptimizer } from "../optim/index.js";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import type { ReduceOp, SyncCollectives } from "../transport/types.js";
import type { StateEntry } from "../optim/index.js";
import { gatherFromSequenceParallel, scatterToSequenceParallel } from "./sequence-parallel.js";
import {
  allReduceSequenceParallelGrads, loadDenseState, tensorParallelPlan, TensorParallelAttention, TensorParallelMLP,
  TensorParallelTransformerBlock,
} from "./tensor-parallel.js";
import type { TpTaskContext } from "./tp-worker.js";
import type { ShardPlan } from "./tp-shard.js";

export interface TensorData { data: Float32Array; shape: number[] }

export type TpBlockKind = "mlp" | "attention" | "block";

export interface BlockCheckInput {
  kind: TpBlockKind;
  dim: number;
  /** mlp: hidden width. */
  hidden?: number;
  /** attention / block. */
  heads?: number;
  causal?: boolean;
  mlpRatio?: number;
  sequenceParallel: boolean;
  /** The single-device module's state dict (same names as the TP module). */
  state: StateEntry[];
  /** Input [.., T, D], replicated on every rank (with SP each rank keeps its chunk of T). */
  x: TensorData;
  /** Gradient of the output, same shape. */
  dy: TensorData;
}

export interface BlockCheckOutput {
  /** The whole output (gathered from the sequence chunks with SP). */
  y: TensorData;
  /** dL/dx of the whole input. */
  dx: TensorData | null;
  /** This rank's parameter gradients (shard shapes), SP-partial ones already summed. */
  grads: StateEntry[];
  plan: ShardPlan;
}

export function buildTensorParallel(kind: TpBlockKind, i: Omit<BlockCheckInput, "state" | "x" | "dy">, comm: SyncCollectives): Module {
  const sp = i.sequenceParallel;
  switch (kind) {
    case "mlp": return new TensorParallelMLP(i.dim, i.hidden ?? 4 * i.dim, comm, { sequenceParallel: sp });
    case "attention": return new TensorParallelAttention(i.dim, i.heads ?? 1, comm, { causal: i.causal, sequenceParallel: sp });
    case "block": return new TensorParallelTransformerBlock(i.dim, i.heads ?? 1, comm, { causal: i.causal, mlpRatio: i.mlpRatio, sequenceParallel: sp });
    default: throw new Error(`unknown tensor-parallel block '${String(kind)}'; valid: mlp, attention, block`);
  }
}

const entry = (k: string, t: Tensor): StateEntry => [k, t.data.slice(), [...t.shape]];

export function checkBlock(ctx: TpTaskContext<BlockCheckInput>): BlockCheckOutput {
  const { input: i, comm } = ctx;
  const tp = buildTensorParallel(i.kind, i, comm);
  loadDenseState(tp, new Map(i.state.map(([k, d, s]) => [k, new Tensor(d, s)])), comm);
  const x = new Tensor(i.x.data, i.x.shape, true);
  const xin = i.sequenceParallel ? scatterToSequenceParallel(x, comm) : x;
  const out = tp.forward(xin);
  // The caller's loss is the same function of the whole output on every rank: replicated gradient.
  const y = i.sequenceParallel ? gatherFromSequenceParallel(out, comm, { backward: "split" }) : out;
  ctx.faultPoint("forward");
  backward(y, [new Tensor(i.dy.data, i.dy.shape)]);
  ctx.faultPoint("backward");
  allReduceSequenceParallelGrads(tp, comm);
  return {
    y: { data: y.data.slice(), shape: [...y.shape] },
    dx: x.grad ? { data: x.grad.data.slice(), shape: [...x.shape] } : null,
    grads: tp.namedParameters().map(([k, p]) => entry(k, p.grad ?? Tensor.zeros(p.shape))),
    plan: tensorParallelPlan(tp),
  };
}

/** Delegates to a SyncCollectives and adds up the milliseconds spent in its blocking calls. */
class TimedCollectives implements SyncCollectives {
  ms = 0;
  constructor(private readonly c: SyncCollectives) {}
  get rank(): number { return this.c.rank; }
  get size(): number { return this.c.size; }
  private timed<T>(f: () => T): T {
    const t0 = performance.now();
    try { return f(); } finally { this.ms += performance.now() - t0; }
  }
  allReduceSync(buf: Float32Array, op?: ReduceOp): void { this.timed(() => this.c.allReduceSync(buf, op)); }
  broadcastSync(buf: Float32Array, root: number): void { this.timed(() => this.c.broadcastSync(buf, root)); }
  barrierSync(): void { this.timed(() => this.c.barrierSync()); }
  allReduce(buf: Float32Array, op?: ReduceOp): Promise<void> { return this.c.allReduce(buf, op); }
  broadcast(buf: Float32Array, root: number): Promise<void> { return this.c.broadcast(buf, root); }
  barrier(): Promise<void> { return this.c.barrier(); }
  abort(): void { this.c.abort(); }
  close(): void { this.c.close(); }
}

export interface MlpBenchInput { dim: number; hidden: number; tokens: number; steps: number; warmup: number; seed: number }

/** Per timed step, milliseconds of this rank. */
export interface MlpBenchOutput { step: number[]; forward: number[]; backward: number[]; update: number[]; comm: number[] }

export function benchMlp(ctx: TpTaskContext<MlpBenchInput>): MlpBenchOutput {
  const { dim, hidden, tokens, steps, warmup, seed } = ctx.input;
  const rng = new Rng(seed);
  // Every rank draws the same single-device weights, then keeps its shards.
  const dense = new Sequential([new Linear(dim, hidden, rng), new GELU(), new Linear(hidden, dim, rng)]);
  const comm = new TimedCollectives(ctx.comm);
  const tp = new TensorParallelMLP(dim, hidden, comm);
  loadDenseState(tp, dense.stateDict(), comm);
  const opt = createOptimizer({ name: "sgd", lr: 1e-3 }, tp.namedParameters());
  const x = Tensor.randn([tokens, dim], rng, 1);
  x.requiresGrad = true; // a block inside a network passes its input gradient on (f's all-reduce)
  const dy = Tensor.randn([tokens, dim], rng, 1);
  const out: MlpBenchOutput = { step: [], forward: [], backward: [], update: [], comm: [] };
  for (let s = 0; s < warmup + steps; s++) {
    comm.ms = 0;
    x.grad = null;
    const t0 = performance.now();
    const y = tp.forward(x);
    const t1 = performance.now();
    backward(y, [dy]);
    const t2 = performance.now();
    opt.step();
    opt.zeroGrad();
    const t3 = performance.now();
    if (s < warmup) continue;
    out.step.push(t3 - t0); out.forward.push(t1 - t0); out.backward.push(t2 - t1); out.update.push(t3 - t2); out.comm.push(comm.ms);
  }
  return out;
}
