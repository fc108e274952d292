// `bench pipeline --executor processes` prints the simulator's rows: per schedule the prediction
// from the run's own records next to the measured step, then labelled predictions for 8 and 16
// ranks. A tiny MLP and one timed round keep it short; no timing is checked, only that every row is
// there and holds finite, positive numbers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mpiSkipReason, runMpi } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const ARGS = ["bench", "pipeline", "--executor", "processes", "--json", "--synthetic=off", "--layers", "7", "--width", "32",
  "--batch", "32", "--microbatches", "4", "--steps", "2", "--rounds", "1", "--warmup", "1"];

for (const n of [2, 3]) {
  test(`bench pipeline --executor processes on ${n} ranks prints sim rows and labelled 8- and 16-rank predictions`, { skip }, async () => {
    const schedules = n === 2 ? "gpipe,1f1b,interleaved,zb-h1,zb-v,dualpipev,async" : "1f1b";
    const r = await runMpi(n, "vader", [...ARGS, "--workers", String(n), "--schedules", schedules]);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).filter((x) => x.bench === "sim");
    // async is named as skipped (its lists span several steps), not dropped without a word.
    if (n === 2) assert.ok(r.stdout.includes(`{"schedule":"async","skipped":`), r.stdout);
    for (const name of schedules.split(",").filter((x) => x !== "async")) {
      const here = rows.find((x) => x.schedule === name && x.ranks === n && x.prediction === undefined);
      assert.ok(here, `${name}: no sim row for ${n} ranks in\n${r.stdout}`);
      for (const k of ["predicted_step_ms", "measured_step_ms", "message_us", "predicted_one_core_per_rank_ms", "replayed_step_ms"]) {
        assert.ok(Number.isFinite(here[k]) && (here[k] as number) > 0, `${name} ${k} = ${String(here[k])}`);
      }
      assert.ok(Number.isFinite(here.error), `${name} error`);
      assert.equal(here.steps, 2);
      assert.equal(here.cpu !== undefined && Array.isArray(here.loadavg), true);
      const ranks = rows.filter((x) => x.schedule === name && x.prediction === true).map((x) => x.ranks);
      // Interleaved needs M a multiple of the ranks: M = 4 allows neither 8 nor 16. A V schedule
      // puts two stages on each rank: the 16 units of this MLP fill 8 ranks, not 16; dualpipev
      // also needs M >= 2 x ranks.
      const want = { interleaved: [], "zb-v": [8], dualpipev: [] }[name] ?? [8, 16];
      assert.deepEqual(ranks, want, `${name} predictions`);
    }
    assert.ok(rows.filter((x) => x.prediction === true).every((x) => typeof x.assumptions === "string" && (x.predicted_step_ms as number) > 0));
  });
}
