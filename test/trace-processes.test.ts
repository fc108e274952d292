// --trace on --executor processes (2 MPI ranks): rank 0 writes one trace holding both ranks as
// processes, their clocks aligned by the offsets measured at start-up: each B of stage 0 starts
// after the receive of its gradient, and each receive starts after its send on the other rank
// (within the measured round trip). Skips (saying why) without Open MPI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mpiSkipReason, runMpi } from "./mpi-helpers.js";
import { assertFollowsSchedule, assertWellFormed, loadTrace, processNames, xEvents } from "./trace-helpers.js";

const skip = mpiSkipReason();

test("train --trace on 2 ranks: both ranks as processes, aligned clocks, the schedule's actions", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-trace-mpi-"));
  try {
    const file = join(dir, "run.json");
    const r = await runMpi(2, "vader", ["train", "--model", "mlp", "--layers", "2", "--width", "64", "--data", "slice", "--limit", "96", "--epochs", "1",
      "--batch", "48", "--quiet", "--json", "--schedule", "gpipe", "--stages", "2", "--microbatches", "4", "--executor", "processes", "--trace", file]);
    assert.equal(r.code, 0, r.stderr);
    const t = loadTrace(file);
    assertWellFormed(t);
    assert.equal(t.metadata.process, "rank");
    assert.deepEqual([...processNames(t)].sort(), [[0, "rank 0"], [1, "rank 1"]]);
    assert.equal(t.metadata.steps.length, 2);
    assertFollowsSchedule(t, "gpipe", 2, 4, (w) => w);
    // Offsets measured at start-up, in the metadata: rank 0 is the reference.
    const clock = t.metadata.segments[0].clock!;
    assert.equal(clock.length, 2);
    assert.deepEqual([clock[0].offset_ms, clock[0].rtt_ms], [0, 0]);
    assert.ok(clock[1].rtt_ms > 0 && clock[1].rounds > 0 && Number.isFinite(clock[1].offset_ms), JSON.stringify(clock));
    const rttUs = Math.max(clock[1].rtt_ms, 0) * 1000;
    for (const { step } of t.metadata.steps) {
      const ev = (name: string, pid: number, key: string) => xEvents(t, (e) => e.name === name && e.pid === pid && e.args?.key === key && e.args?.step === step)[0];
      for (let m = 0; m < 4; m++) {
        // Rank 0's B of micro-batch m waits for the gradient from rank 1.
        const b = xEvents(t, (e) => e.name === "B" && e.pid === 0 && e.args?.microbatch === m && e.args?.step === step)[0];
        const gRecv = ev("receive", 0, `g0:${m}`), gSend = ev("send", 1, `g0:${m}`);
        const aRecv = ev("receive", 1, `a1:${m}`), aSend = ev("send", 0, `a1:${m}`);
        assert.ok(b && gRecv && gSend && aRecv && aSend, `step ${step}, micro-batch ${m}: events missing`);
        assert.ok(b.ts >= gRecv.ts, `0B${m} starts before its gradient arrives`);
        // A receive follows its send on the other rank's clock, within the measured round trip.
        assert.ok(aRecv.ts + rttUs >= aSend.ts, `a1:${m}: received at ${aRecv.ts} µs, sent at ${aSend.ts} µs (rtt ${rttUs} µs)`);
        assert.ok(gRecv.ts + rttUs >= gSend.ts, `g0:${m}: received at ${gRecv.ts} µs, sent at ${gSend.ts} µs (rtt ${rttUs} µs)`);
        // Rank 1's F of m needs the activation; rank 0's B of m follows rank 1's B of m.
        const f1 = xEvents(t, (e) => e.name === "F" && e.pid === 1 && e.args?.microbatch === m && e.args?.step === step)[0];
        const b1 = xEvents(t, (e) => e.name === "B" && e.pid === 1 && e.args?.microbatch === m && e.args?.step === step)[0];
        assert.ok(f1.ts + rttUs >= aSend.ts && b.ts + rttUs >= b1.ts, `micro-batch ${m}: dependencies out of order across ranks`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
