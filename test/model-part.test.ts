// createModelPart (an MPI rank's own units): the kept units carry createModel's bits for every
// built-in model, the others only their parameter counts and names; an absent unit refuses to run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AbsentUnit, createModel, createModelPart, type ModelSpec } from "../src/nn/models/index.js";
import { Tensor } from "../src/tensor/tensor.js";

const SPECS: ModelSpec[] = [
  { name: "mlp", input: 784, hidden: [32, 16], classes: 10 },
  { name: "cnn", channels: [4, 8], hidden: 16, classes: 10, norm: "batch" } as ModelSpec,
  { name: "vit", patch: 7, dim: 16, depth: 2, heads: 2, classes: 10 } as ModelSpec,
  { name: "gpt", vocab: 256, dim: 16, heads: 2, depth: 2, context: 8 },
];

for (const spec of SPECS) {
  test(`createModelPart == createModel on the kept units, bookkeeping of the others: ${spec.name}`, () => {
    const whole = createModel(spec, 7);
    const U = whole.units.length;
    // Every other unit, starting with the second: the first kept one follows an absent one.
    const part = createModelPart(spec, 7, (u) => u % 2 === 1);
    assert.equal(part.units.length, U);
    assert.equal(part.numParameters(), whole.numParameters());
    assert.deepEqual(part.parameterNames(), whole.namedParameters().map(([n]) => n));
    assert.ok(part.partial);
    const got = part.stateDict();
    for (const [k, t] of whole.stateDict()) {
      const u = Number(k.split(".")[1]);
      if (u % 2 === 1) assert.deepEqual(Buffer.from(got.get(k)!.data.buffer), Buffer.from(t.data.buffer), `${k} differs`);
      else assert.equal(got.has(k), false, `${k} of an absent unit is held`);
    }
    part.units.forEach((u, i) => assert.equal(u instanceof AbsentUnit, i % 2 === 0));
    assert.throws(() => part.units[0].forward(new Tensor(new Float32Array(1), [1])), /unit 0 is held by another process/);
    assert.equal(createModelPart(spec, 7, () => true).partial, false);
  });
}
