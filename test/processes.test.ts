// --executor processes (one MPI rank per worker) against the inline executor, bit for bit: the
// checkpoint's weights and optimizer state after the same run, for every synchronous schedule, an
// asynchronous methods, recompute, both weight-gradient modes and several stages per rank, on 2 and
// 3 ranks, over shared memory and over TCP on loopback. Skips (saying why) without Open MPI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint } from "../src/checkpoint/index.js";
import { MAIN, mpiSkipReason, runMpi, type Btl, assertSameCheckpoint } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const COMMON = ["--model", "mlp", "--data", "slice", "--limit", "192", "--epochs", "2", "--batch", "48", "--quiet", "--json"];

interface Case { name: string; ranks: number; btl: Btl; args: string[] }

const CASES: Case[] = [
  { name: "gpipe", ranks: 2, btl: "vader", args: ["--schedule", "gpipe", "--stages", "2"] },
  { name: "1f1b", ranks: 2, btl: "tcp", args: ["--schedule", "1f1b", "--stages", "2"] },
  { name: "interleaved", ranks: 2, btl: "vader", args: ["--schedule", "interleaved", "--stages", "2", "--chunks", "2"] },
  { name: "zb-h1", ranks: 2, btl: "vader", args: ["--schedule", "zb-h1", "--stages", "2"] },
  { name: "zb-v (4 stages in a V on 2 workers)", ranks: 2, btl: "vader", args: ["--schedule", "zb-v", "--stages", "4"] },
  { name: "dualpipev (4 stages in a V on 2 workers)", ranks: 2, btl: "tcp", args: ["--schedule", "dualpipev", "--stages", "4"] },
  { name: "1f1b recompute always", ranks: 2, btl: "vader", args: ["--schedule", "1f1b", "--stages", "2", "--recompute", "always"] },
  { name: "1f1b weight-grads step", ranks: 2, btl: "vader", args: ["--schedule", "1f1b", "--stages", "2", "--weight-grads", "step"] },
  { name: "gpipe 4 stages on 2 workers", ranks: 2, btl: "vader", args: ["--schedule", "gpipe", "--stages", "4", "--workers", "2"] },
  { name: "async pipemare after a warm-up epoch", ranks: 2, btl: "vader", args: ["--schedule", "async", "--stages", "2", "--method", "pipemare", "--warmup-epochs", "1"] },
  { name: "async stash", ranks: 2, btl: "vader", args: ["--schedule", "async", "--stages", "2", "--method", "stash"] },
  { name: "async 2bw", ranks: 2, btl: "tcp", args: ["--schedule", "async", "--stages", "2", "--method", "2bw"] },
  { name: "async pb (spike compensation, weight prediction)", ranks: 2, btl: "vader", args: ["--schedule", "async", "--stages", "2", "--method", "pb"] },
  { name: "async naive", ranks: 3, btl: "vader", args: ["--schedule", "async", "--stages", "3", "--method", "naive"] },
  { name: "1f1b", ranks: 3, btl: "vader", args: ["--schedule", "1f1b", "--stages", "3"] },
  { name: "zb-h1", ranks: 3, btl: "tcp", args: ["--schedule", "zb-h1", "--stages", "3"] },
  { name: "interleaved", ranks: 3, btl: "vader", args: ["--schedule", "interleaved", "--stages", "3", "--chunks", "2", "--microbatches", "6"] },
];


for (const c of CASES) {
  if (!c.args.includes("--microbatches")) c.args.push("--microbatches", "4");
  test(`processes == inline bit for bit: ${c.name} on ${c.ranks} ranks over ${c.btl}`, { skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "pw-proc-"));
    try {
      const inlineCk = join(dir, "inline.safetensors"), procCk = join(dir, "proc.safetensors");
      const r = spawnSync(process.execPath, [MAIN, "train", ...COMMON, ...c.args, "--executor", "inline", "--save", inlineCk], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const p = await runMpi(c.ranks, c.btl, ["train", ...COMMON, ...c.args, "--executor", "processes", "--save", procCk]);
      assert.equal(p.code, 0, p.stderr);
      // Rank 0 alone prints the summary.
      assert.equal(p.stdout.trim().split("\n").length, 1, p.stdout);
      const ps = JSON.parse(p.stdout), rs = JSON.parse(r.stdout);
      assert.equal(ps.train_loss, rs.train_loss);
      // Evaluation runs through the ranks' stages.
      assert.deepEqual([ps.test_loss, ps.test_acc], [rs.test_loss, rs.test_acc]);
      assertSameCheckpoint(inlineCk, procCk);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("--executor processes outside MPI says how to launch it", () => {
  const r = spawnSync(process.execPath, [MAIN, "train", ...COMMON, "--schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--executor", "processes"],
    { encoding: "utf8", env: { ...process.env, OMPI_COMM_WORLD_RANK: "", PMIX_RANK: "", PMI_RANK: "" } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /not started by MPI; launch it with `pipewright launch -n 2 -- train/);
});

test("a checkpoint saved in parts from 4 ranks is the single-device shape: equal to inline's and to a gathered file, resumed on 2 ranks and on one device as inline's is", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-reshard-"));
  try {
    const base = [...COMMON, "--microbatches", "4", "--schedule", "1f1b"];
    const four = join(dir, "four.safetensors"), fourInline = join(dir, "four-inline.safetensors");
    const p4 = await runMpi(4, "vader", ["train", ...base, "--epochs", "1", "--stages", "4", "--executor", "processes", "--save", four]);
    assert.equal(p4.code, 0, p4.stderr);
    const i4 = spawnSync(process.execPath, [MAIN, "train", ...base, "--epochs", "1", "--stages", "4", "--executor", "inline", "--save", fourInline], { encoding: "utf8" });
    assert.equal(i4.status, 0, i4.stderr);
    assertSameCheckpoint(fourInline, four);
    // Resume the 4-rank checkpoint on 2 ranks and, as the oracle, on the inline executor with 2 stages.
    const two = join(dir, "two.safetensors"), twoInline = join(dir, "two-inline.safetensors");
    const resume = ["--resume", four, "--stages", "2", "--quiet", "--json"];
    const p2 = await runMpi(2, "vader", ["train", "--epochs", "2", ...resume, "--executor", "processes", "--save", two]);
    assert.equal(p2.code, 0, p2.stderr);
    const i2 = spawnSync(process.execPath, [MAIN, "train", "--epochs", "2", ...resume, "--executor", "inline", "--save", twoInline], { encoding: "utf8" });
    assert.equal(i2.status, 0, i2.stderr);
    assertSameCheckpoint(twoInline, two);
    // One device reads it too (no stage keys anywhere in the parts), as it reads inline's single file.
    const oneDevice = (from: string, to: string): void => {
      const one = spawnSync(process.execPath, [MAIN, "train", "--epochs", "2", "--resume", from, "--schedule", "none", "--quiet", "--json", "--save", to], { encoding: "utf8" });
      assert.equal(one.status, 0, one.stderr);
    };
    oneDevice(four, join(dir, "one.safetensors"));
    oneDevice(fourInline, join(dir, "one-inline.safetensors"));
    assertSameCheckpoint(join(dir, "one-inline.safetensors"), join(dir, "one.safetensors"));
    for (const k of loadCheckpoint(four).model.keys()) assert.match(k, /^layers\.\d+\./, `state-dict name ${k}`);
    // Saved in parts by default (one per rank, src/pipeline/runtime/parted-save.ts), and bit for bit what gathering to rank 0 writes.
    const meta = loadCheckpoint(four).metadata;
    assert.equal(meta.format, "pipewright-manifest");
    assert.equal(JSON.parse(meta.parts).length, 4);
    const fourFile = join(dir, "four-file.safetensors");
    const f4 = await runMpi(4, "vader", ["train", ...base, "--epochs", "1", "--stages", "4", "--executor", "processes", "--save-layout", "file", "--save", fourFile]);
    assert.equal(f4.code, 0, f4.stderr);
    assert.equal(loadCheckpoint(fourFile).metadata.format, "pipewright");
    assertSameCheckpoint(fourFile, four);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--replicas 2: 2 workers x 2 replicas (4 ranks) match one pipeline within the data-parallel tolerance; threads give their bits", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pw-replicas-"));
  try {
    const args = [...COMMON, "--microbatches", "4", "--schedule", "1f1b", "--stages", "2"];
    const ref = join(dir, "ref.safetensors"), ck = join(dir, "ck.safetensors");
    const r = spawnSync(process.execPath, [MAIN, "train", ...args, "--executor", "inline", "--save", ref], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const p = await runMpi(4, "vader", ["train", ...args, "--executor", "processes", "--replicas", "2", "--save", ck]);
    assert.equal(p.code, 0, p.stderr);
    const a = loadCheckpoint(ref), b = loadCheckpoint(ck);
    let worst = 0;
    for (const [k, x] of a.model) {
      const y = b.model.get(k)!;
      for (let i = 0; i < x.data.length; i++) worst = Math.max(worst, Math.abs(x.data[i] - y.data[i]) / (1e-3 + Math.abs(x.data[i])));
    }
    // The same gradients summed in another order: float32 rounding, far below any training effect.
    assert.ok(worst < 1e-4, `largest relative weight difference ${worst}`);
    assert.ok(Math.abs(JSON.parse(p.stdout).train_loss - JSON.parse(r.stdout).train_loss) < 1e-4);
    // Each replica evaluates its share of the test chunks; the sums come back in chunk order.
    assert.ok(Math.abs(JSON.parse(p.stdout).test_loss - JSON.parse(r.stdout).test_loss) < 1e-4);
    // At most one of the 192 test images may fall on the other side of a near tie.
    assert.ok(Math.abs(JSON.parse(p.stdout).test_acc - JSON.parse(r.stdout).test_acc) <= 1 / 192 + 1e-9);
    // --executor threads runs the same replicas on worker threads: the processes run's bits and metrics.
    const thr = join(dir, "threads.safetensors");
    const t = spawnSync(process.execPath, [MAIN, "train", ...args, "--executor", "threads", "--replicas", "2", "--save", thr], { encoding: "utf8" });
    assert.equal(t.status, 0, t.stderr);
    assertSameCheckpoint(ck, thr);
    for (const k of ["train_loss", "test_loss", "test_acc"]) assert.equal(JSON.parse(t.stdout)[k], JSON.parse(p.stdout)[k], k);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
