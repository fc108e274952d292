// Every executor returns stateDict() in the model's own order (PyTorch's), also under an interleaved
// schedule, where a worker holds its chunks out of model order (worker 0: units 0-1 and 4-5). The
// oracle is the order of createModel's stateDict(); the three executors also agree bit for bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createModel } from "../src/nn/models/index.js";
import { MPI_ENV, mpiSkipReason, mpirunArgs } from "./mpi-helpers.js";
import { SEED, SPEC } from "./lib-replicas-script.js";

const SCRIPT = fileURLToPath(new URL("./lib-replicas-script.js", import.meta.url));

type Weights = [string, number[]][];

function run(dir: string, executor: "inline" | "threads" | "processes"): Weights {
  const out = join(dir, `${executor}.json`);
  const args = [SCRIPT, executor, "interleaved", out, "1"];
  // The timeout only stops a hung run.
  const r = executor === "processes"
    ? spawnSync("mpirun", [...mpirunArgs(2, "vader"), process.execPath, ...args], { encoding: "utf8", env: { ...process.env, ...MPI_ENV }, timeout: 120_000 })
    : spawnSync(process.execPath, args, { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(readFileSync(out, "utf8")) as { weights: Weights }).weights;
}

const skip = mpiSkipReason();

for (const executor of ["inline", "threads", "processes"] as const) {
  test(`${executor}: stateDict() of an interleaved run (2 workers x 2 chunks) is in the model's order and has inline's bits`,
    { skip: executor === "processes" ? skip : false }, () => {
      const dir = mkdtempSync(join(tmpdir(), "pw-order-"));
      try {
        const got = run(dir, executor);
        assert.deepEqual(got.map(([k]) => k), [...createModel(SPEC, SEED).stateDict().keys()]);
        if (executor !== "inline") assert.deepEqual(got, run(dir, "inline"));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
}
