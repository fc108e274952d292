// createPipeline({tensorParallel, sequenceParallel}): PTD-P from the library on a built-in gpt. The
// oracle is test/ptdp.test.ts's: the same batches trained on one device (the inline executor, one
// stage); the pipe's weights must agree within 1e-5 (relative) after 3 steps. Also the bad-input lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPipeline, type PipelineOptions } from "../src/index.js";
import { createModel } from "../src/nn/models/index.js";
import { InlineExecutor } from "../src/pipeline/runtime/inline.js";
import { batches, M, OPT, SEED, setupOf, SPEC, train } from "./lib-ptdp-script.js";

const fromBits = (b: number[]): Float32Array => new Float32Array(Uint32Array.from(b).buffer);

async function oneDevice(): Promise<Map<string, Float32Array>> {
  const model = createModel(SPEC, SEED);
  const ex = new InlineExecutor(model, setupOf({ P: 1, T: 1, D: 1, sp: false, schedule: "1f1b" }, model.units.length));
  const r = await train(ex);
  await ex.close();
  return new Map(r.weights.map(([k, b]) => [k, fromBits(b)]));
}

const base = (): PipelineOptions => ({ model: { builtin: SPEC, seed: SEED }, stages: 2, microbatches: M, optimizer: OPT, executor: "threads" });

test("createPipeline with tensorParallel 2 and sequenceParallel, (P, T, D) = (2, 2, 1) on threads, equals single-device training within 1e-5", async () => {
  const want = await oneDevice();
  const pipe = await createPipeline({ ...base(), tensorParallel: 2, sequenceParallel: true });
  let got: Map<string, { data: Float32Array }>;
  try {
    for (const b of batches()) await pipe.step(b.x, b.y);
    got = await pipe.stateDict();
  } finally {
    await pipe.close();
  }
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), "single-device names");
  let differs = false;
  for (const [k, t] of got) {
    const r = want.get(k)!;
    assert.equal(t.data.length, r.length, `${k} size`);
    t.data.forEach((v, i) => {
      assert.ok(Math.abs(v - r[i]) <= 1e-5 * Math.max(1, Math.abs(r[i])), `${k}[${i}]: ${v} vs ${r[i]}`);
      differs ||= v !== r[i];
    });
  }
  assert.ok(differs, "bit-identical to one device: nothing was split");
});

test("bad tensorParallel input: one line naming the numbers", async () => {
  const cases: [Partial<PipelineOptions>, RegExp][] = [
    [{ tensorParallel: 3 }, /^createPipeline: tensorParallel 3 must divide the attention heads 2$/],
    [{ tensorParallel: 2, model: { builtin: { name: "mlp", input: 4, hidden: [4], classes: 2 }, seed: 0 } },
      /^createPipeline: tensorParallel 2 needs a transformer model \(gpt, vit\): this model has no transformer blocks to split$/],
    [{ sequenceParallel: true }, /^createPipeline: sequenceParallel .* needs tensorParallel 2 or more, not 1$/],
    [{ tensorParallel: 0 }, /^createPipeline: tensorParallel must be a positive integer, got 0$/],
    [{ tensorParallel: 2, executor: "inline" }, /^createPipeline: tensorParallel 2 runs T ranks per worker: use executor "threads" or "processes", not "inline"$/],
    [{ tensorParallel: 2, schedule: "async" }, /^createPipeline: tensorParallel 2 needs a synchronous schedule/],
  ];
  for (const [o, want] of cases) {
    await assert.rejects(createPipeline({ ...base(), ...o } as PipelineOptions), (e: Error) => {
      assert.match(e.message, want);
      return true;
    });
  }
});
