// REDUCE among the inline executor's replicas, all in one thread: a replica's REDUCE of (stage, step)
// waits until every replica has reached it; the last one to arrive sums the replicas' buffers
// (replica-reduce.ts) element by element in replica order, the rule of every transport
// (src/transport/reduce.ts), gives each replica the sum and wakes the waiting ones.
import type { PhysicalStage } from "./interpreter.js";
import { packReduce, unpackReduce } from "./replica-reduce.js";
import { reduceInOrder } from "../../transport/reduce.js";

interface Rendezvous { stages: PhysicalStage[]; arrived: number; done: () => void; settled: Promise<void> }

export class InlineReduce {
  private readonly open = new Map<string, Rendezvous>();
  /** Rendezvous completed since the executor last asked (their waiters still have to wake). */
  private completed = 0;

  constructor(private readonly replicas: number) {}

  /** Replica `replica` has reached the REDUCE of `stage` for optimizer step `step`. */
  reduce(replica: number, stage: PhysicalStage, step: number): Promise<void> | void {
    const key = `${stage.index}:${step}`;
    let r = this.open.get(key);
    if (!r) {
      let done!: () => void;
      const settled = new Promise<void>((resolve) => { done = resolve; });
      r = { stages: [], arrived: 0, done, settled };
      this.open.set(key, r);
    }
    if (r.stages[replica]) throw new Error(`replica ${replica} reached the REDUCE of stage ${stage.index}, step ${step} twice`);
    r.stages[replica] = stage;
    if (++r.arrived < this.replicas) return r.settled;
    this.open.delete(key);
    const bufs = r.stages.map(packReduce);
    const sum = new Float32Array(bufs[0].length);
    reduceInOrder(bufs, sum, 0, sum.length, "sum");
    for (const s of r.stages) unpackReduce(s, sum);
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
