// The library on the processes executor (SPMD, as with torchrun): a user model with a user loss,
// run by a user script on 2 MPI ranks through createPipeline, equals the same script on the inline
// executor bit for bit (weights, optimizer state, every rank's losses and eval output), for gpipe
// and 1f1b, and after loadStateDict (the executor restarts). A rank that fails ends the job naming itself; outside MPI the error says how to launch.
// The MPI cases skip (saying why) without Open MPI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { rankProgram } from "../src/cli/launch.js";
import { MPI_ENV, mpiSkipReason, mpirunArgs } from "./mpi-helpers.js";

const SCRIPT = fileURLToPath(new URL("./lib-spmd-script.js", import.meta.url));
const skip = mpiSkipReason();

interface RankLine { rank: number; losses: number[]; eval: number[] }

function runScript(ranks: number | null, args: string[]): { status: number | null; lines: RankLine[]; stderr: string } {
  // A hang detector (not a timing threshold): a job that never ends fails the test.
  const r = ranks === null
    ? spawnSync(process.execPath, [SCRIPT, ...args], { encoding: "utf8", timeout: 120_000 })
    : spawnSync("mpirun", [...mpirunArgs(ranks, "vader"), process.execPath, SCRIPT, ...args],
      { encoding: "utf8", timeout: 120_000, env: { ...process.env, ...MPI_ENV } });
  const lines = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as RankLine);
  return { status: r.status, lines, stderr: r.stderr };
}

for (const [schedule, variant] of [["gpipe"], ["1f1b"], ["gpipe", "reload"]]) {
  test(`createPipeline on processes (2 ranks, user model and loss) == inline bit for bit: ${schedule}${variant ? `, ${variant}` : ""}`, { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), "pw-spmd-"));
    try {
      const inlineCk = join(dir, "inline.safetensors"), procCk = join(dir, "proc.safetensors");
      const a = runScript(null, ["inline", schedule, inlineCk, ...(variant ? [variant] : [])]);
      assert.equal(a.status, 0, a.stderr);
      const p = runScript(2, ["processes", schedule, procCk, ...(variant ? [variant] : [])]);
      assert.equal(p.status, 0, p.stderr);
      // Every rank gets the mini-batch losses and the eval output, the inline executor's bits.
      assert.deepEqual(p.lines.map((l) => l.rank).sort(), [0, 1]);
      for (const l of p.lines) {
        assert.deepEqual(l.losses, a.lines[0].losses, `rank ${l.rank} losses`);
        assert.deepEqual(l.eval, a.lines[0].eval, `rank ${l.rank} eval output`);
      }
      const x = loadCheckpoint(inlineCk), y = loadCheckpoint(procCk);
      assert.deepEqual([...y.model.keys()], [...x.model.keys()]);
      for (const [k, t] of x.model) assert.deepEqual(Buffer.from(y.model.get(k)!.data.buffer), Buffer.from(t.data.buffer), `weights ${k} differ`);
      assert.equal(JSON.stringify(y.optimizer), JSON.stringify(x.optimizer), "optimizer state differs");
      assert.equal(y.step, variant === "reload" ? 4 : 3);
      assert.equal(y.metadata.format, "pipewright-manifest", "processes save one part per rank");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("createPipeline on processes with replicas: 2 and 2 (4 ranks) match one pipeline within the data-parallel tolerance; threads with replicas give their bits", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-spmd-"));
  try {
    const inlineCk = join(dir, "inline.safetensors"), procCk = join(dir, "proc.safetensors");
    const a = runScript(null, ["inline", "1f1b", inlineCk, "replicas"]);
    assert.equal(a.status, 0, a.stderr);
    const p = runScript(4, ["processes", "1f1b", procCk, "replicas"]);
    assert.equal(p.status, 0, p.stderr);
    assert.deepEqual(p.lines.map((l) => l.rank).sort(), [0, 1, 2, 3]);
    // The same gradients summed in another order: float32 rounding only.
    const close = (x: number, y: number): boolean => Math.abs(x - y) <= 1e-5 * Math.max(1, Math.abs(y));
    for (const l of p.lines) {
      l.losses.forEach((v, i) => assert.ok(close(v, a.lines[0].losses[i]), `rank ${l.rank} loss ${i}: ${v} vs ${a.lines[0].losses[i]}`));
      l.eval.forEach((v, i) => assert.ok(close(v, a.lines[0].eval[i]), `rank ${l.rank} eval ${i}: ${v} vs ${a.lines[0].eval[i]}`));
    }
    const x = loadCheckpoint(inlineCk), y = loadCheckpoint(procCk);
    for (const [k, t] of x.model) t.data.forEach((v, i) => assert.ok(close(y.model.get(k)!.data[i], v), `weights ${k}[${i}]`));
    // And the replicas did split the rows: the bits are not inline's.
    assert.ok([...x.model].some(([k, t]) => t.data.some((v, i) => v !== y.model.get(k)!.data[i])), "replicas gave inline's bits exactly");
    // Replicas on worker threads run the same IR with the same sums: the processes run's bits.
    const threadsCk = join(dir, "threads.safetensors");
    const t = runScript(null, ["threads", "1f1b", threadsCk, "replicas"]);
    assert.equal(t.status, 0, t.stderr);
    assert.deepEqual(t.lines[0].losses, p.lines[0].losses, "threads replicas losses");
    assert.deepEqual(t.lines[0].eval, p.lines[0].eval, "threads replicas eval output");
    const z = loadCheckpoint(threadsCk);
    for (const [k, w] of y.model) assert.deepEqual(Buffer.from(z.model.get(k)!.data.buffer), Buffer.from(w.data.buffer), `threads replicas weights ${k} differ`);
    assert.equal(JSON.stringify(z.optimizer), JSON.stringify(y.optimizer), "threads replicas optimizer state differs");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("createPipeline on processes: a rank whose options differ ends the job, naming a rank", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-spmd-"));
  try {
    const p = runScript(2, ["processes", "gpipe", join(dir, "ck.safetensors"), "mismatch"]);
    assert.notEqual(p.status, 0);
    assert.match(p.stderr, /pipewright: rank [01] failed: rank [01] and rank [01] built different pipelines/);
    assert.equal(existsSync(join(dir, "ck.safetensors")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('createPipeline executor "processes" outside MPI says how to launch the script', () => {
  const r = spawnSync(process.execPath, [SCRIPT, "processes", "gpipe", join(tmpdir(), "never.safetensors")], { encoding: "utf8", timeout: 60_000,
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(OMPI_|PMIX_|PMI_)/.test(k))) });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /executor "processes" runs one MPI rank per worker \(2 here\), but this process was not started by MPI; .*`mpirun -n 2 node .*lib-spmd-script\.js` or `pipewright launch -n 2 -- node .*lib-spmd-script\.js`/);
});

test("launch runs `node SCRIPT` (a library script) on this Node, and pipewright commands through the CLI", () => {
  assert.deepEqual(rankProgram(["node", "train.mjs", "--steps", "3"]), [process.execPath, "train.mjs", "--steps", "3"]);
  const cli = rankProgram(["train", "--stages", "2"]);
  assert.equal(cli[0], process.execPath);
  assert.match(cli[1], /cli[\\/]main\.js$/);
  assert.deepEqual(cli.slice(2), ["train", "--stages", "2"]);
});

test("a freeze pipe asked for another executor is refused, not run on threads silently; on processes outside MPI it says how to launch", async () => {
  const { createPipeline } = await import("../src/index.js");
  const freezePipe = (executor: string): Promise<unknown> => createPipeline({ model: { builtin: { name: "vit" } as never }, stages: 2,
    optimizer: { name: "sgd", lr: 0.1 }, freeze: { batch: 8, samples: 16 }, executor } as never);
  await assert.rejects(freezePipe("inline"), /a freeze pipe runs on threads or processes; executor "inline" is not supported with freeze/);
  await assert.rejects(freezePipe("processes"), /createPipeline: executor "processes" runs one MPI rank per worker \(2 here\), but this process was not started by MPI; run the same script on 2 ranks: `mpirun -n 2 node /);
});
