// A user's model built from the library's tensor-parallel layers, for test/ptdp-user-blocks.test.ts:
// `build(args, { tensor })` returns Linear 6->8, two residual MLP blocks 8 -> 16 -> 8 (a
// ColumnParallelLinear, GELU, a RowParallelLinear) and Linear 8->3. Over a group of one (the main
// thread, one device) the blocks are whole; over a worker's tensor group, shards.
import { ColumnParallelLinear, GELU, Linear, Module, ops, RowParallelLinear, Rng, type ModelContext, type SyncCollectives, type Tensor } from "../src/index.js";

class ParallelMlpBlock extends Module {
  readonly up: ColumnParallelLinear;
  readonly act = new GELU();
  readonly down: RowParallelLinear;

  constructor(dim: number, hidden: number, comm: SyncCollectives) {
    super();
    this.up = this.registerModule("up", new ColumnParallelLinear(dim, hidden, comm));
    this.down = this.registerModule("down", new RowParallelLinear(hidden, dim, comm));
  }

  forward(x: Tensor): Tensor { return ops.add(x, this.down.forward(this.act.forward(this.up.forward(x)))); }
}

export function build(args: { hidden?: number } | undefined, ctx: ModelContext): Module[] {
  const hidden = args?.hidden ?? 16;
  const rng = new Rng(4);
  const units = [new Linear(6, 8, rng), new ParallelMlpBlock(8, hidden, ctx.tensor), new ParallelMlpBlock(8, hidden, ctx.tensor), new Linear(8, 3, rng)];
  // The parallel layers start at zero: give every weight a fixed value (workers then load the main thread's).
  let k = 0;
  for (const p of units.flatMap((u) => u.parameters())) p.data.forEach((_, i) => { p.data[i] = 0.4 * Math.sin(1.7 * k++ + 0.3); });
  return units;
}
