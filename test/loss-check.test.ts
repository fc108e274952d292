// A user loss that broadcasts the model's output [b, 1] against a target [b] (b*b differences: the
// wrong loss, with no error) is refused before the first step, on every executor, with a message
// naming both shapes; a loss with matching shapes, or one that reshapes by itself, trains; the check
// runs once (one extra call of the loss), not every step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPipeline, type ExecutorName, type LossOption } from "../src/index.js";
import { setBackend } from "../src/backend/index.js";
import { buildModel, lossCheckData, naiveMse, reshapingMse } from "./lib-loss-check.js";

setBackend("reference");
const MODULE = new URL("./lib-loss-check.js", import.meta.url).href;
const OPT = { name: "sgd", lr: 0.1 } as const;

function pipeline(executor: ExecutorName, loss: LossOption) {
  return createPipeline({
    model: executor === "inline" ? buildModel() : { module: MODULE, export: "buildModel" },
    loss, stages: 2, microbatches: 2, optimizer: OPT, executor,
  });
}

const BROADCAST = /loss '(naiveMse|user loss)': the model's output \[4, 1\] and the target \[4\] are broadcast against each other \('sub' of \[4, 1\] and \[4\] gives \[4, 4\]\).*reshape the target to \[4, 1\] \(e\.g\. ops\.reshape\(target, \[-1,1\]\)/;

for (const executor of ["inline", "threads"] as const) {
  test(`${executor}: a user loss broadcasting output [b, 1] against target [b] fails before the first step, naming both shapes`, async () => {
    const loss: LossOption = executor === "inline" ? naiveMse : { module: MODULE, export: "naiveMse" };
    const pipe = await pipeline(executor, loss);
    try {
      const before = await pipe.stateDict();
      const { x, y } = lossCheckData(8, false);
      await assert.rejects(pipe.step(x, y), BROADCAST);
      if (executor === "inline") {
        // Nothing moved: the check ran before any gradient or optimizer step.
        for (const [k, t] of await pipe.stateDict()) assert.deepEqual(t.data, before.get(k)!.data, `${k} changed`);
      }
    } finally {
      await pipe.close();
    }
  });
}

test("the same loss with matching shapes ([b, 1] targets) trains, and so does a loss that reshapes by itself", async () => {
  for (const [loss, column] of [[naiveMse, true], [reshapingMse, false]] as const) {
    const pipe = await pipeline("inline", loss);
    try {
      const { x, y } = lossCheckData(8, column);
      const losses: number[] = [];
      for (let s = 0; s < 30; s++) losses.push(await pipe.step(x, y));
      assert.ok(losses.every(Number.isFinite));
      assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `${loss.name}: ${losses[0]} -> ${losses[losses.length - 1]}`);
    } finally {
      await pipe.close();
    }
  }
});

test("the check runs once: one extra call of the loss, then one per micro-batch", async () => {
  let calls = 0;
  const counted = (out: Parameters<typeof naiveMse>[0], y: Parameters<typeof naiveMse>[1]) => { calls++; return naiveMse(out, y); };
  const pipe = await pipeline("inline", counted);
  try {
    const { x, y } = lossCheckData(8, true);
    for (let s = 0; s < 3; s++) await pipe.step(x, y);
    assert.equal(calls, 3 * 2 + 1);
  } finally {
    await pipe.close();
  }
});
