// The webgpu kernels' source cache on its own (no device): a builder runs once per distinct
// arguments, hands back the very same string after that, and other exports pass through.
import { test } from "node:test";
import assert from "node:assert/strict";
import { builtOnce } from "../src/backend/webgpu/wgsl.js";
import * as rows from "../src/backend/webgpu/kernels-rows.js";

test("builtOnce: a shader builder runs once per distinct arguments; the same source string comes back", () => {
  const calls: string[] = [];
  const m = builtOnce({
    sumShader: (wg: number, lanes: number) => { calls.push(`${wg},${lanes}`); return `sum ${wg} ${lanes}`; },
    LIMIT: 3,
    helper: (x: number) => x + 1,
  });
  const a = m.sumShader(64, 1);
  assert.equal(m.sumShader(64, 1), a);
  assert.equal(m.sumShader(64, 64), "sum 64 64");
  assert.equal(m.sumShader(64, 64), "sum 64 64");
  assert.deepEqual(calls, ["64,1", "64,64"]);
  assert.equal(m.LIMIT, 3);
  assert.equal(m.helper(1), 2);
  // A real kernel module: the cached source is the builder's.
  assert.equal(builtOnce(rows).maxShader(128, 128), rows.maxShader(128, 128));
});
