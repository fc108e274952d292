// The inline executor's collectives, all in one thread: each party (a replica, or a worker of one
// copy) arrives at a named rendezvous; the last one to arrive combines every party's part in party
// order, the rule of every transport (src/transport/reduce.ts), and wakes the waiting ones.
//   REDUCE: a stage's copies in the replicas; their buffers (replica-reduce.ts) summed element by element.
//   clipping: the workers of one copy; their norm slots (grad-clip.ts) summed.
import type { PhysicalStage } from "./interpreter.js";
import { packReduce, unpackReduce } from "./replica-reduce.js";
import { reduceInOrder } from "../../transport/reduce.js";
import type { NormGroup } from "./grad-clip.js";

interface Rendezvous<T> { parts: T[]; arrived: number; done: () => void; settled: Promise<void> }

/** Rendezvous of `size` parties by key; `combine` runs once over every party's part, by party index. */
export class InlineRendezvous<T> {
  private readonly open = new Map<string, Rendezvous<T>>();
  /** Rendezvous completed since the executor last asked (their waiters still have to wake). */
  private completed = 0;

  constructor(private readonly size: number, private readonly combine: (parts: T[]) => void) {}

  /** Party `party` has reached rendezvous `key` with `part`: a promise until the last one arrives. */
  arrive(key: string, party: number, part: T, what: () => string): Promise<void> | void {
    let r = this.open.get(key);
    if (!r) {
      let done!: () => void;
      const settled = new Promise<void>((resolve) => { done = resolve; });
      r = { parts: [], arrived: 0, done, settled };
      this.open.set(key, r);
    }
    if (r.parts[party] !== undefined) throw new Error(`${what()} twice`);
    r.parts[party] = part;
    if (++r.arrived < this.size) return r.settled;
    this.open.delete(key);
    this.combine(r.parts);
    this.completed++;
    r.done();
  }

  /** Whether a rendezvous completed since the last call (its waiters wake on the microtask queue). */
  takeCompleted(): boolean {
    const any = this.completed > 0;
    this.completed = 0;
    return any;
  }

  /** Forgets unfinished rendezvous (a new list starts; a failed one left some behind). */
  clear(): void {
    this.open.clear();
    this.completed = 0;
  }
}

/** The element-wise sum of `bufs` in their order (the transports' rule). */
function sumOf(bufs: Float32Array[]): Float32Array {
  const sum = new Float32Array(bufs[0].length);
  reduceInOrder(bufs, sum, 0, sum.length, "sum");
  return sum;
}

/** REDUCE among `replicas` copies: replica r's REDUCE of (stage, step). */
export function inlineReduce(replicas: number): InlineRendezvous<PhysicalStage> & { reduce(replica: number, stage: PhysicalStage, step: number): Promise<void> | void } {
  const r = new InlineRendezvous<PhysicalStage>(replicas, (stages) => {
    const sum = sumOf(stages.map(packReduce));
    for (const s of stages) unpackReduce(s, sum);
  });
  return Object.assign(r, {
    reduce: (replica: number, stage: PhysicalStage, step: number) =>
      r.arrive(`${stage.index}:${step}`, replica, stage, () => `replica ${replica} reached the REDUCE of stage ${stage.index}, step ${step}`),
  });
}

/** The norm sums of clipping among the `workers` workers of each copy: worker w of replica r's group. */
export function inlineNorms(workers: number): InlineRendezvous<Float32Array> & { group(replica: number, worker: number): NormGroup } {
  const r = new InlineRendezvous<Float32Array>(workers, (bufs) => {
    const sum = sumOf(bufs);
    for (const b of bufs) b.set(sum);
  });
  return Object.assign(r, {
    group: (replica: number, worker: number): NormGroup => ({
      rank: worker, size: workers,
      allReduce: (slots, step) => r.arrive(`${replica}:${step}`, worker, slots, () => `worker ${worker} of replica ${replica} reached the gradient-norm sum of step ${step}`),
    }),
  });
}
