// createPipeline({ tensorParallel }) on a user's own blocks built from the library's
// ColumnParallelLinear / RowParallelLinear (test/lib-tp-blocks.ts): each worker builds them over its
// tensor group and loads its shards of the main thread's weights. The oracle is the same factory on
// one device (a group of one: whole layers) on the inline executor; weights within 1e-5 after 3 steps.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPipeline, Tensor, type PipelineOptions } from "../src/index.js";
import { Rng } from "../src/tensor/random.js";

const MODEL = { module: new URL("./lib-tp-blocks.js", import.meta.url).href, export: "build" };
const base: PipelineOptions = { model: MODEL, stages: 2, microbatches: 2, optimizer: { name: "sgd", lr: 0.3, momentum: 0.9 }, schedule: "1f1b" };

function batches(): { x: Tensor; y: Int32Array }[] {
  const rng = new Rng(9);
  return Array.from({ length: 3 }, () => ({
    x: new Tensor(Float32Array.from({ length: 8 * 6 }, () => 2 * rng.uniform() - 1), [8, 6]),
    y: Int32Array.from({ length: 8 }, () => rng.int(3)),
  }));
}

/** Stage 0 of (2, 2, 1): Linear 6->8 whole, one block's up [16, 8] + bias 16 and down [8, 16] split in two, down's bias whole. */
const STAGE0_RANK_BYTES = 4 * ((6 * 8 + 8) + (16 * 8 + 16) / 2 + (8 * 16) / 2 + 8);

async function trained(o: PipelineOptions): Promise<Map<string, { data: Float32Array; shape: readonly number[] }>> {
  const pipe = await createPipeline(o);
  try {
    for (const b of batches()) await pipe.step(b.x, b.y);
    if (o.tensorParallel === 2 && o.stages === 2) {
      // Each tensor rank holds its shards, not the whole blocks.
      assert.deepEqual(pipe.memory!.filter((m) => m.worker === 0).map((m) => m.parameterBytes), [STAGE0_RANK_BYTES, STAGE0_RANK_BYTES]);
    }
    return await pipe.stateDict();
  } finally {
    await pipe.close();
  }
}

test("createPipeline tensorParallel 2 on a user's blocks of ColumnParallelLinear / RowParallelLinear, (P, T, D) = (2, 2, 1) and (1, 2, 2) on threads, equals one device within 1e-5", async () => {
  const want = await trained({ ...base, stages: 1, executor: "inline" });
  for (const layout of [{ stages: 2, replicas: 1 }, { stages: 1, replicas: 2 }]) {
    const got = await trained({ ...base, ...layout, executor: "threads", tensorParallel: 2 });
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), "single-device names");
    let differs = false;
    for (const [k, t] of got) {
      const r = want.get(k)!;
      assert.deepEqual(t.shape, r.shape, `${k}: the whole (gathered) shape`);
      t.data.forEach((v, i) => {
        assert.ok(Math.abs(v - r.data[i]) <= 1e-5 * Math.max(1, Math.abs(r.data[i])), `${JSON.stringify(layout)} ${k}[${i}]: ${v} vs ${r.data[i]}`);
        differs ||= v !== r.data[i];
      });
    }
    assert.ok(differs, "bit-identical to one device: nothing was split");
    // The blocks moved: they trained (the oracle is not the starting point).
    assert.ok(got.get("1.up.weight")!.data.some((v, i) => v !== (0.4 * Math.sin(1.7 * (6 * 8 + 8 + i) + 0.3))));
  }
});

test("a user's tensor-parallel layers: T must divide their split features; sequenceParallel is for the built-in blocks; one line each", async () => {
  const cases: [Partial<PipelineOptions>, RegExp][] = [
    [{ tensorParallel: 3 }, /^createPipeline: tensorParallel 3 must divide the output features 16 of a ColumnParallelLinear$/],
    [{ tensorParallel: 2, sequenceParallel: true }, /^createPipeline: sequenceParallel splits the built-in transformer blocks \(gpt, vit\)/],
  ];
  for (const [o, want] of cases) {
    await assert.rejects(createPipeline({ ...base, executor: "threads", ...o } as PipelineOptions), (e: Error) => {
      assert.match(e.message, want);
      return true;
    });
  }
});
