// bench pipeline's choice of balance keeps the least of two measurements of each stage's costs,
// DualPipeV's FB pair times included (the simulator's ideal for dualpipev reads them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { minCosts } from "../src/cli/bench-pipeline.js";

test("minCosts: the least of two measurements per stage, pair times kept", () => {
  const a = { forward: [1, 5], backward: [2, 2], weight: [0, 1], step: [3, 1], pair: [4, null] };
  const b = { forward: [2, 4], backward: [1, 3], weight: [1, 0], step: [3, 2], pair: [3, null] };
  assert.deepEqual(minCosts(a, b), { forward: [1, 4], backward: [1, 2], weight: [0, 0], step: [3, 1], pair: [3, null] });
  // Without pairs (every schedule but dualpipev) there is no pair entry.
  assert.equal("pair" in minCosts({ ...a, pair: undefined }, { ...b, pair: undefined }), false);
});
