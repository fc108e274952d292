// Faults in freeze runs on MPI ranks: a rank that throws ends the job naming its rank, replica,
// stage, action and error; a stopped rank (SIGSTOP) is caught by the watchdog (launch --timeout),
// which names what the waiting rank waits for. The runs must end (runMpi's hang detector fails a
// run that never does). Skips (saying why) without Open MPI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mpiSkipReason, runAndStopRank1, runMpi } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const TRAIN = ["train", "--model", "vit", "--patch", "7", "--width", "16", "--layers", "2", "--heads", "2", "--freeze", "--freeze-alpha", "1/2",
  "--batch", "16", "--data", "slice", "--limit", "32", "--executor", "processes"];

test("a freeze-run rank that throws ends the job with its rank, replica, stage, action and error", { skip }, async () => {
  // Layer 4 (the token mean) is in stage 1 of the starting 2-stage pipeline: rank 1.
  const r = await runMpi(2, "vader", [...TRAIN, "--epochs", "2", "--quiet"], { env: { PIPEWRIGHT_INJECT_FAULT: "4:2" }, timeoutMs: 60_000 });
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null, "ended by the hang detector");
  assert.match(r.stderr, /rank 1 \(replica 0, stage 1\) failed: stage 1, action 1F2: injected fault in unit 4 on micro-batch 2/);
});

test("SIGSTOP of a freeze-run rank: the watchdog ends the job, naming what rank 0 waits for", { skip }, async (t) => {
  const r = await runAndStopRank1([...TRAIN, "--epochs", "200"], /epoch 2\/200/);
  assert.ok(r.stopped, `rank 1 was never stopped: ${r.stderr}`);
  t.diagnostic(`job ended ${r.secondsAfterStop.toFixed(2)} s after the SIGSTOP (watchdog timeout 2 s)`);
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null, "ended by the hang detector");
  assert.match(r.stderr, /rank 0 (\(replica 0, stage 0\) )?failed: watchdog: nothing arrived for 2 s; (rank 0 waits at action \S+ for \S+ from rank 1|waiting in .* for the other ranks)/);
});
