// Faults under --executor processes never hang: a rank whose action throws ends the job naming its
// rank, stage, action and error; a rank killed with SIGKILL ends the job naming the rank. Each
// run's wall time is reported (t.diagnostic); the only time limit is the hang detector in runMpi.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mpiSkipReason, rankPids, runAndStopRank1, runMpi } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const TRAIN = ["train", "--model", "mlp", "--data", "slice", "--limit", "192", "--batch", "48", "--microbatches", "4",
  "--schedule", "1f1b", "--stages", "2", "--executor", "processes"];

test("a rank whose action throws ends the job, naming rank, stage, action and error", { skip }, async (t) => {
  // mlp units 0-2 are stage 0 (rank 0), 3-5 stage 1 (rank 1): unit 4 throws on micro-batch 2.
  const r = await runMpi(2, "vader", [...TRAIN, "--epochs", "2", "--quiet"], { env: { PIPEWRIGHT_INJECT_FAULT: "4:2" }, timeoutMs: 60_000 });
  t.diagnostic(`job ended after ${r.seconds.toFixed(2)} s (start-up included)`);
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null, "ended by the hang detector");
  assert.match(r.stderr, /rank 1 failed: stage 1, action 1F2: injected fault in unit 4 on micro-batch 2/);
});

test("SIGKILL of a rank ends the job, naming the rank", { skip }, async (t) => {
  let killedAt = 0;
  const r = await runMpi(2, "vader", [...TRAIN, "--epochs", "200"], {
    timeoutMs: 120_000,
    onStderr: (text, pid) => {
      // Once the first epoch is done every rank is inside the training loop.
      if (killedAt || !/epoch 1\/200/.test(text)) return;
      const pids = rankPids(pid);
      const victim = pids.get(1);
      if (victim === undefined) return;
      killedAt = performance.now();
      process.kill(victim, "SIGKILL");
    },
  });
  assert.ok(killedAt > 0, `rank 1 was never killed: ${r.stderr}`);
  t.diagnostic(`job ended ${((performance.now() - killedAt) / 1000).toFixed(2)} s after the SIGKILL`);
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null, "ended by the hang detector");
  assert.match(r.stderr, /rank 1 .*(signal 9|Killed)/s);
});

test("SIGSTOP of a rank: the watchdog (--timeout) ends the job, naming the action waited for and the stopped rank", { skip }, async (t) => {
  const r = await runAndStopRank1([...TRAIN, "--epochs", "200"], /epoch 1\/200/);
  assert.ok(r.stopped, `rank 1 was never stopped: ${r.stderr}`);
  t.diagnostic(`job ended ${r.secondsAfterStop.toFixed(2)} s after the SIGSTOP (watchdog timeout 2 s)`);
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null, "ended by the hang detector");
  assert.match(r.stderr, /rank 0 failed: watchdog: nothing arrived for 2 s; (rank 0 waits at action \S+ for \S+ from rank 1|waiting in)/);
});
