// PipeTransformer freeze runs on MPI ranks (--freeze --executor processes) against the same run on
// worker threads, bit for bit: per-epoch train and test losses, the layouts, per-step losses and
// the checkpoint's weights and optimizer state. The runs cross the transitions that matter: a
// pipeline halved with the freed ranks turned into replicas (2x1 -> 1x2, 4x1 -> 2x2 -> 1x4, so
// stages move between ranks and replicas all-reduce), the grad-norm criterion (its norms gathered
// from the ranks decide the freeze), and AutoCache filled for several replicas
// and then read, and a rank left idle by a layout that does not fill the job. A tiny ViT (2-3 blocks, width 16) on 64 samples keeps each run to seconds.
// Skips (saying why) without Open MPI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { parseMetrics } from "../src/train/metrics.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { fileURLToPath } from "node:url";
import { MAIN, MPI_ENV, mpirunArgs, mpiSkipReason, runMpi, type Btl } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const COMMON = ["--model", "vit", "--patch", "7", "--width", "16", "--heads", "2", "--freeze", "--batch", "16",
  "--data", "slice", "--limit", "64", "--seed", "3", "--quiet", "--json"];

interface Case { name: string; ranks: number; btl: Btl; args: string[]; layouts: [number, number, number][]; cachedFrom: number }

const CASES: Case[] = [
  { name: "grad-norm criterion, 2x1 -> 1x2 with AutoCache", ranks: 2, btl: "vader",
    args: ["--layers", "2", "--freeze-alpha", "1/2", "--epochs", "3"], layouts: [[0, 2, 1], [3, 1, 2], [3, 1, 2]], cachedFrom: 3 },
  { name: "schedule criterion, 4x1 -> 2x2 -> 1x4 with AutoCache", ranks: 4, btl: "vader",
    args: ["--layers", "2", "--freeze-alpha", "1/3", "--epochs", "5", "--freeze-criterion", "schedule"],
    layouts: [[0, 4, 1], [2, 2, 2], [4, 1, 4], [5, 1, 4], [5, 1, 4]], cachedFrom: 5 },
  { name: "an idle rank (2x1 on 3 ranks) that becomes a replica (1x3, uneven shards)", ranks: 3, btl: "vader",
    args: ["--layers", "2", "--stages", "2", "--freeze-alpha", "1/2", "--epochs", "3"], layouts: [[0, 2, 1], [3, 1, 3], [3, 1, 3]], cachedFrom: 3 },
  { name: "grad-norm criterion, 4x1 -> 2x2, cache filled for two replicas", ranks: 4, btl: "tcp",
    args: ["--layers", "3", "--freeze-alpha", "1/3", "--epochs", "4"], layouts: [[0, 4, 1], [3, 2, 2], [3, 2, 2], [3, 2, 2]], cachedFrom: 3 },
];

interface Epoch { loss: number; testLoss: number; testAcc: number; frozen: number; stages: number; replicas: number; microbatches: number; cached: boolean }

function sameBits(a: Tensor, b: Tensor | undefined, what: string): void {
  assert.ok(b, `${what} is missing`);
  assert.deepEqual(b.shape, a.shape, `${what}: shape`);
  assert.ok(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)), `${what} differs`);
}

function assertSameCheckpoint(a: string, b: string): void {
  const x = loadCheckpoint(a), y = loadCheckpoint(b);
  assert.deepEqual([...y.model.keys()], [...x.model.keys()]);
  for (const [k, t] of x.model) sameBits(t, y.model.get(k), `weights ${k}`);
  const ox = x.optimizer as unknown as { tensors: Map<string, Tensor>; steps: unknown; groups: unknown };
  const oy = y.optimizer as unknown as typeof ox;
  assert.deepEqual(oy.groups, ox.groups);
  assert.deepEqual(oy.steps, ox.steps);
  assert.deepEqual([...oy.tensors.keys()], [...ox.tensors.keys()]);
  for (const [k, t] of ox.tensors) sameBits(t, oy.tensors.get(k), `optimizer state ${k}`);
  assert.deepEqual([y.step, y.epoch], [x.step, x.epoch]);
}

const stepLosses = (file: string): [number, number | null][] =>
  parseMetrics(readFileSync(file, "utf8")).filter((r) => r.type === "step").map((r) => [r.step, r.loss]);

for (const c of CASES) {
  test(`freeze run on ${c.ranks} MPI ranks over ${c.btl} == worker threads bit for bit: ${c.name}`, { skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "pw-freeze-proc-"));
    try {
      const out = (name: string): string[] => ["--save", join(dir, `${name}.safetensors`), "--metrics", join(dir, `${name}.jsonl`)];
      const t = spawnSync(process.execPath, [MAIN, "train", ...COMMON, ...c.args, "--workers", String(c.ranks), ...out("threads")], { encoding: "utf8" });
      assert.equal(t.status, 0, t.stderr);
      const p = await runMpi(c.ranks, c.btl, ["train", ...COMMON, ...c.args, "--executor", "processes", ...out("proc")]);
      assert.equal(p.code, 0, p.stderr);
      assert.equal(p.stdout.trim().split("\n").length, 1, `rank 0 alone prints the summary:\n${p.stdout}`);
      const th = (JSON.parse(t.stdout) as { history: Epoch[] }).history, ph = (JSON.parse(p.stdout) as { history: Epoch[] }).history;
      // The layouts the case is about (frozen layers, stages, replicas), and the cache read from its epoch on.
      assert.deepEqual(th.map((e) => [e.frozen, e.stages, e.replicas]), c.layouts);
      assert.deepEqual(th.map((e) => e.cached), th.map((_, i) => i + 1 >= c.cachedFrom));
      const epochs = (h: Epoch[]): unknown[] => h.map((e) => [e.loss, e.testLoss, e.testAcc, e.frozen, e.stages, e.replicas, e.microbatches, e.cached]);
      assert.deepEqual(epochs(ph), epochs(th), "per-epoch losses and layouts");
      assert.deepEqual(stepLosses(join(dir, "proc.jsonl")), stepLosses(join(dir, "threads.jsonl")), "per-step losses");
      assertSameCheckpoint(join(dir, "threads.safetensors"), join(dir, "proc.safetensors"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

const BAD = ["train", ...COMMON, "--layers", "2", "--epochs", "1", "--limit", "32"];

test("a freeze run on MPI with -n other than --workers ends with both numbers", { skip }, async () => {
  const p = await runMpi(3, "vader", [...BAD, "--executor", "processes", "--workers", "2"]);
  assert.notEqual(p.code, 0);
  assert.match(p.stderr, /the job has 3 MPI rank\(s\) but --freeze --workers 2 needs 2 .*start it with -n 2 or give --workers 3/);
});

test("--freeze --executor processes outside MPI, and --freeze --executor inline, are usage errors", () => {
  const args = BAD;
  const outside = spawnSync(process.execPath, [MAIN, ...args, "--executor", "processes"], { encoding: "utf8" });
  assert.equal(outside.status, 2);
  assert.match(outside.stderr, /not started by MPI; launch it with `pipewright launch -n 2/);
  const inline = spawnSync(process.execPath, [MAIN, ...args, "--executor", "inline"], { encoding: "utf8" });
  assert.equal(inline.status, 2);
  assert.match(inline.stderr, /--executor inline does not apply with --freeze; use threads \(default\) or processes/);
});

test("a freeze checkpoint saved on 4 MPI ranks resumes on 2 ranks as a 4-worker thread run's resumes on 2 workers, bit for bit", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-freeze-reshard-"));
  try {
    const args = [...COMMON, "--layers", "2", "--freeze-alpha", "1/3", "--freeze-criterion", "schedule", "--schedule-lr", "none"];
    const ck = (name: string): string => join(dir, `${name}.safetensors`);
    const thread = (more: string[]): void => {
      const r = spawnSync(process.execPath, [MAIN, "train", ...args, ...more], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    };
    thread(["--workers", "4", "--epochs", "2", "--save", ck("t4")]);
    thread(["--workers", "2", "--stages", "2", "--epochs", "4", "--resume", ck("t4"), "--save", ck("t2")]);
    const p4 = await runMpi(4, "vader", ["train", ...args, "--executor", "processes", "--epochs", "2", "--save", ck("p4")]);
    assert.equal(p4.code, 0, p4.stderr);
    assertSameCheckpoint(ck("t4"), ck("p4"));
    const p2 = await runMpi(2, "vader", ["train", ...args, "--executor", "processes", "--stages", "2", "--epochs", "4", "--resume", ck("p4"), "--save", ck("p2")]);
    assert.equal(p2.code, 0, p2.stderr);
    const h = JSON.parse(p2.stdout) as { history: Epoch[]; resumed_from: { epoch: number } };
    assert.equal(h.resumed_from.epoch, 2);
    // 4x1 -> 2x2 before the save; on 2 ranks the layouts follow from the freezes and 2 workers.
    assert.deepEqual(h.history.map((e) => [e.frozen, e.stages, e.replicas]), [[0, 4, 1], [2, 2, 2], [4, 1, 2], [5, 1, 2]]);
    assertSameCheckpoint(ck("t2"), ck("p2"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a freeze pipe through createPipeline on 2 MPI ranks (SPMD script) == the same script on threads bit for bit", { skip }, () => {
  const script = fileURLToPath(new URL("./lib-freeze-spmd-script.js", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "pw-freeze-lib-"));
  try {
    type RankLine = { rank: number; losses: number[]; frozen: (number | null)[]; eval: number[] };
    const run = (cmd: string, args: string[], ckpt: string, ranks: number, env: NodeJS.ProcessEnv = process.env): RankLine[] => {
      // A hang detector (not a timing threshold): a job that never ends fails the test.
      const r = spawnSync(cmd, [...args, ckpt], { encoding: "utf8", timeout: 120_000, env });
      assert.equal(r.status, 0, r.stderr);
      // Each rank writes its own file (stdout lines of two ranks can interleave under mpirun).
      return Array.from({ length: ranks }, (_, k) => JSON.parse(readFileSync(`${ckpt}.rank${k}.json`, "utf8")) as RankLine);
    };
    const [t] = run(process.execPath, [script, "threads"], join(dir, "threads.safetensors"), 1);
    assert.deepEqual(t.frozen, [3, 5], "the schedule freezes 3 then 5 of 6 layers");
    const p = run("mpirun", [...mpirunArgs(2, "vader"), process.execPath, script, "processes"], join(dir, "proc.safetensors"), 2, { ...process.env, ...MPI_ENV });
    assert.deepEqual(p.map((l) => l.rank).sort(), [0, 1]);
    for (const l of p) assert.deepEqual([l.losses, l.frozen, l.eval], [t.losses, t.frozen, t.eval], `rank ${l.rank}: losses, freezes and eval output`);
    assertSameCheckpoint(join(dir, "threads.safetensors"), join(dir, "proc.safetensors"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
