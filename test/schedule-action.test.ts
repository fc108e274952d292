import { test } from "node:test";
import assert from "node:assert/strict";
import { ACTION_KINDS, type Action, formatAction, parseAction } from "../src/pipeline/schedule/index.js";

test("compact action strings round-trip", () => {
  for (const kind of ACTION_KINDS) {
    for (const stage of [0, 1, 7, 12]) {
      for (const mb of [0, 3, 15, 128]) {
        for (const chunk of kind === "STEP" || kind === "REDUCE" ? [0] : [0, 1, 2]) {
          const a: Action = { stage, kind, microbatch: mb, chunk };
          const text = formatAction(a);
          assert.deepEqual(parseAction(text), a, text);
        }
      }
    }
  }
});

test("compact form matches the documented examples", () => {
  assert.equal(formatAction({ stage: 1, kind: "F", microbatch: 3, chunk: 0 }), "1F3");
  assert.equal(formatAction({ stage: 0, kind: "B", microbatch: 2, chunk: 1 }), "0B2c1");
  assert.deepEqual(parseAction("0B2c1"), { stage: 0, kind: "B", microbatch: 2, chunk: 1 });
  assert.deepEqual(parseAction("2STEP0"), { stage: 2, kind: "STEP", microbatch: 0, chunk: 0 });
});

test("parse errors name the bad string", () => {
  for (const bad of ["1X3", "F3", "1F", "1F3c", "-1F3", "1 F 3", "", "2STEP0c1"]) {
    assert.throws(() => parseAction(bad), (e: Error) => e.message.includes(`'${bad}'`), bad);
  }
});
