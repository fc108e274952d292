// Global gradient-norm clipping across a pipeline (Megatron's clip_grad_norm over the model
// parallel group): at a worker's first STEP of an optimizer step, after every REDUCE, each rank of
// one model copy (the replica's workers times their tensor ranks) puts its sum of squares in a slot
// of its own; one all-reduce gives every rank every slot, and each sums them in slot order, so the
// norm is the same bits on every rank and every executor. A tensor-parallel shard counts on each
// tensor rank, a replicated parameter on tensor rank 0 only (sequence parallelism's partial
// gradients are summed over the tensor group first). Replicas hold the same summed
// gradients after REDUCE, so each copy clips on its own.
import { checkMaxNorm, clipScale, scaleGradients, sumOfSquares } from "../../optim/clip.js";
import { specOf, type ShardPlan } from "../../parallel/tp-shard.js";
import type { InterpreterOptions } from "./interpreter.js";
import type { PipelineSetup } from "./setup.js";
import type { SyncCollectives } from "../../transport/types.js";

/** The ranks of one model copy; rank = worker * T + tensor rank. */
export interface NormGroup {
  readonly rank: number;
  readonly size: number;
  /** Element-wise sum over the group's ranks, in place (every slot has one writer, so the sum is exact). */
  allReduce(slots: Float32Array, step: number): void | Promise<void>;
}

/** A norm group over one blocking collective of the model's ranks (threads' shared memory). */
export function syncNormGroup(c: SyncCollectives): NormGroup {
  return { rank: c.rank, size: c.size, allReduce: (slots) => c.allReduceSync(slots, "sum") };
}

/**
 * A norm group over a worker's tensor group (blocking, as the layers' collectives) and then its
 * pipeline group (the workers of one tensor rank and replica; awaited): MPI's communicators.
 */
export function nestedNormGroup(tensor: SyncCollectives | null, pipe: { rank: number; size: number; allReduce(buf: Float32Array, op: "sum"): Promise<void> }): NormGroup {
  const T = tensor?.size ?? 1;
  return {
    rank: pipe.rank * T + (tensor?.rank ?? 0), size: pipe.size * T,
    allReduce: async (slots) => {
      if (tensor && T > 1) tensor.allReduceSync(slots, "sum");
      await pipe.allReduce(slots, "sum");
    },
  };
}

/** Checks setup.clipGradNorm: a finite bound > 0 and a synchronous schedule. */
export function checkClipping(setup: Pick<PipelineSetup, "clipGradNorm" | "async" | "schedule">): void {
  if (setup.clipGradNorm === undefined) return;
  checkMaxNorm(setup.clipGradNorm, "--clip-grad-norm");
  if (setup.async || !setup.schedule.synchronous) {
    throw new Error(`--clip-grad-norm needs a synchronous schedule (gpipe, 1f1b, interleaved, zb-h1, zb-v, dualpipev), not '${setup.async?.config.method ?? setup.schedule.name}': an asynchronous method steps each stage on its own`);
  }
}

/**
 * The interpreter's clip hook for setup.clipGradNorm (nothing without it): the STEP hook that clips
 * the gradients of a worker's stages to that global norm, summed over `group` (absent: a model of
 * one rank; a promise when its all-reduce is asynchronous). `counted` as countedOnRank; `prepare`
 * makes the gradients whole first (sequence parallelism's partial sums).
 */
export function clipOption(setup: PipelineSetup, group?: NormGroup, counted: (name: string) => boolean = () => true,
  prepare?: () => void): Pick<InterpreterOptions, "clip"> {
  const maxNorm = setup.clipGradNorm;
  if (maxNorm === undefined) return {};
  checkClipping(setup);
  const ranks = setup.schedule.workers.length * (setup.tensorParallel?.size ?? 1);
  if (!group && ranks > 1) throw new Error(`gradient clipping over ${ranks} ranks needs a norm group, and this executor gave none`);
  const g: NormGroup = group ?? { rank: 0, size: 1, allReduce: () => {} };
  return {
    clip: (stages, step) => {
      prepare?.();
      const params = stages.flatMap((ps) => ps.chunks.flatMap((c) => c.namedParameters())).filter(([, p]) => p.requiresGrad && p.grad);
      const own = sumOfSquares(params.filter(([n]) => counted(n)).map(([, p]) => p.grad!.data));
      // Two float32 slots per rank (the transports' type): high and low parts keep about 48 bits.
      const slots = new Float32Array(2 * g.size);
      slots[2 * g.rank] = own;
      slots[2 * g.rank + 1] = own - slots[2 * g.rank];
      const finish = (): void => {
        let total = 0;
        for (let r = 0; r < g.size; r++) total += slots[2 * r] + slots[2 * r + 1];
        scaleGradients(params.map(([, p]) => p.grad!.data), clipScale(Math.sqrt(total), maxNorm));
      };
      const pending = g.allReduce(slots, step);
      return pending ? pending.then(finish) : finish();
    },
  };
}

/** Which of a rank's parameters count in the norm: everything without tensor parallelism. */
export function countedOnRank(plan: ShardPlan, tensorRank: number): (name: string) => boolean {
  return tensorRank === 0 ? () => true : (name) => specOf(plan, name).kind === "split";
}
