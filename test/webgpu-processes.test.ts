// The processes executor (one MPI rank per worker) on the webgpu backend (Mesa's llvmpipe where there
// is no GPU): a 2-stage 1F1B pipeline, and the same with 2 replicas, give the same weights, optimizer
// state and losses bit for bit as the threads and inline executors on webgpu. Every rank opens its own
// device; activations, gradients and the replicas' all-reduce cross through host memory. Skips,
// saying why, without Open MPI or a WebGPU adapter.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setBackend } from "../src/backend/index.js";
import { MAIN, mpiSkipReason, runMpi, assertSameCheckpoint } from "./mpi-helpers.js";

function skipReason(): string | false {
  const mpi = mpiSkipReason();
  if (mpi) return mpi;
  try {
    setBackend("webgpu");
    return false;
  } catch (e) {
    return `no WebGPU adapter: ${(e as Error).message}`;
  }
}
const skip = skipReason();
const COMMON = ["--model", "mlp", "--data", "slice", "--limit", "96", "--epochs", "1", "--batch", "48", "--microbatches", "4",
  "--schedule", "1f1b", "--stages", "2", "--backend", "webgpu", "--quiet", "--json"];

for (const replicas of [1, 2]) {
  test(`webgpu, 2-stage 1F1B${replicas > 1 ? `, ${replicas} replicas` : ""}: processes == threads == inline bit for bit`, { skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "pw-gpu-proc-"));
    try {
      const args = [...COMMON, "--replicas", String(replicas)];
      const ck = (name: string): string => join(dir, `${name}.safetensors`);
      const summaries: Record<string, { train_loss: number; test_loss: number }> = {};
      for (const executor of ["inline", "threads"]) {
        const r = spawnSync(process.execPath, [MAIN, "train", ...args, "--executor", executor, "--save", ck(executor)], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        summaries[executor] = JSON.parse(r.stdout);
      }
      const p = await runMpi(2 * replicas, "vader", ["train", ...args, "--executor", "processes", "--save", ck("processes")], { timeoutMs: 300_000 });
      assert.equal(p.code, 0, p.stderr);
      summaries.processes = JSON.parse(p.stdout);
      for (const executor of ["threads", "processes"]) {
        assert.deepEqual([summaries[executor].train_loss, summaries[executor].test_loss], [summaries.inline.train_loss, summaries.inline.test_loss], executor);
        assertSameCheckpoint(ck("inline"), ck(executor));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
