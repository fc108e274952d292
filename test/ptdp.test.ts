// PTD-P: pipeline x tensor x data parallel in one run. The oracle is single-device training (the
// inline executor on one stage): each layout, with and without sequence parallelism, must give its
// weights within 1e-5 (relative) after 3 steps: tensor-parallel sums run in another order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MPI_ENV, mpiSkipReason, mpirunArgs } from "./mpi-helpers.js";

const SCRIPT = fileURLToPath(new URL("./lib-ptdp-script.js", import.meta.url));

interface Result { losses: number[]; weights: [string, number[]][]; optimizer: string }

const fromBits = (b: number[]): Float32Array => new Float32Array(Uint32Array.from(b).buffer);

function run(dir: string, executor: string, [P, T, D]: number[], sp: boolean, schedule = "1f1b"): Result {
  const out = join(dir, `${executor}-${P}${T}${D}-${sp}-${schedule}.json`);
  const r = spawnSync(process.execPath, [SCRIPT, executor, String(P), String(T), String(D), sp ? "sp" : "no-sp", schedule, out], { encoding: "utf8", timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(readFileSync(out, "utf8")) as Result;
}

function assertClose(got: Result, want: Result, what: string): void {
  assert.deepEqual(got.weights.map(([k]) => k).sort(), want.weights.map(([k]) => k).sort(), `${what}: names`);
  const w = new Map(want.weights);
  for (const [k, b] of got.weights) {
    const g = fromBits(b), r = fromBits(w.get(k)!);
    assert.equal(g.length, r.length, `${what}: ${k} size`);
    g.forEach((v, i) => assert.ok(Math.abs(v - r[i]) <= 1e-5 * Math.max(1, Math.abs(r[i])), `${what}: ${k}[${i}]: ${v} vs ${r[i]}`));
  }
}

test("PTD-P on threads equals single-device training within 1e-5 for (P, T, D) in (2,2,1), (2,1,2), (1,2,2), (2,2,2), with and without sequence parallelism", () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-ptdp-"));
  try {
    const ref = run(dir, "inline", [1, 1, 1], false);
    for (const layout of [[2, 2, 1], [2, 1, 2], [1, 2, 2], [2, 2, 2]]) {
      for (const sp of [false, true]) {
        if (sp && layout[1] === 1) continue; // sequence parallelism needs T > 1
        const got = run(dir, "threads", layout, sp);
        assertClose(got, ref, `threads (${layout.join(",")})${sp ? " sp" : ""}`);
        // The run did split the work: its sums ran in another order than the single device's.
        assert.notDeepEqual(got.weights, ref.weights);
      }
    }
    // Interleaved (two chunks per worker) with T = 2 too.
    assertClose(run(dir, "threads", [2, 2, 1], true, "interleaved"), ref, "threads (2,2,1) sp interleaved");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const skip = mpiSkipReason();

// Two ranks (one worker of T = 2): larger layouts oversubscribe a 2-core machine badly, since a
// tensor-parallel rank polls MPI itself while its list runs.
test("PTD-P threads == processes bit for bit for (P, T, D) = (1, 2, 1): weights, optimizer state, losses", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-ptdp-"));
  try {
    const threads = run(dir, "threads", [1, 2, 1], false);
    const out = join(dir, "processes.json");
    const p = spawnSync("mpirun", [...mpirunArgs(2, "vader"), process.execPath, SCRIPT, "processes", "1", "2", "1", "no-sp", "1f1b", out],
      { encoding: "utf8", env: { ...process.env, ...MPI_ENV }, timeout: 180_000 });
    assert.equal(p.status, 0, `status ${p.status}: ${p.stderr}${p.stdout}`);
    const processes = JSON.parse(readFileSync(out, "utf8")) as Result;
    assert.deepEqual(processes.weights, threads.weights, "weights");
    assert.equal(processes.optimizer, threads.optimizer, "optimizer state");
    assert.deepEqual(processes.losses, threads.losses, "losses");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
