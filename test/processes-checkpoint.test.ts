// Checkpoints of --executor processes in parts (one file per rank, a manifest written last): a run
// saving every epoch is killed in the middle of its second save (a rank SIGKILLs itself at a test
// hook: its part half written, its part complete, or every part complete but no manifest); the
// previous checkpoint still loads, the crashed save's files do not count, and resuming from it ends
// bit for bit where an uninterrupted run (inline, the oracle) ends, with the leftovers removed.
// A checkpoint with a part missing is refused with the part named. Skips without Open MPI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadCheckpoint, type PartInfo } from "../src/checkpoint/index.js";
import { MAIN, mpiSkipReason, runMpi, assertSameCheckpoint } from "./mpi-helpers.js";

const skip = mpiSkipReason();
const BASE = ["--model", "mlp", "--data", "slice", "--limit", "192", "--batch", "48", "--quiet", "--json", "--stages", "2", "--microbatches", "4", "--epochs", "2"];
const COMMON = [...BASE, "--schedule", "1f1b"];

const dir = mkdtempSync(join(tmpdir(), "pw-proc-ckpt-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));


/** The manifest's part files, and every other file of checkpoint `base` in its directory (leftovers). */
function filesOf(where: string, base: string): { listed: string[]; others: string[] } {
  const listed = (JSON.parse(loadCheckpoint(join(where, base)).metadata.parts) as PartInfo[]).map((p) => p.file);
  const others = readdirSync(where).filter((f) => (f.startsWith(`${base}.part-`) || f.startsWith(`.${base}.part-`)) && !listed.includes(f));
  return { listed, others };
}

let reference: string | null = null;
/** The uninterrupted run's checkpoint after 2 epochs, on the inline executor. */
function uninterrupted(): string {
  if (reference) return reference;
  reference = join(dir, "reference.safetensors");
  const r = spawnSync(process.execPath, [MAIN, "train", ...COMMON, "--executor", "inline", "--save", reference], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return reference;
}

const CRASHES = [
  { rank: 1, point: "after-part", left: "rank 1's complete part" },
  { rank: 0, point: "mid-part", left: "rank 0's half-written temp file" },
  { rank: 0, point: "before-manifest", left: "both complete parts" },
];

for (const c of CRASHES) {
  test(`processes: rank ${c.rank} killed in the second save (${c.point}) leaves the first checkpoint loadable; resuming it ends as an uninterrupted run`, { skip }, async () => {
    const where = join(dir, c.point);
    mkdirSync(where);
    const ck = join(where, "ck.safetensors");
    const crashed = await runMpi(2, "vader", ["train", ...COMMON, "--executor", "processes", "--save", ck], { env: { PIPEWRIGHT_TEST_CRASH_SAVE: `2:${c.rank}:${c.point}` } });
    assert.notEqual(crashed.code, 0, `the crash hook did not end the job: ${crashed.stderr}`);
    const previous = loadCheckpoint(ck);
    assert.deepEqual([previous.epoch, previous.step], [1, 4], "the checkpoint is the first save's");
    const before = filesOf(where, "ck.safetensors");
    assert.equal(before.listed.length, 2);
    assert.ok(before.others.length > 0, `the crashed save should have left ${c.left}; files: ${readdirSync(where).join(", ")}`);
    if (c.point === "mid-part") assert.ok(before.others.some((f) => f.startsWith(".") && f.includes(".tmp-")), before.others.join(", "));
    // Resume into the same path: the result is the uninterrupted run's, and the crashed save's files are gone.
    const resumed = await runMpi(2, "vader", ["train", "--resume", ck, "--epochs", "2", "--quiet", "--json", "--executor", "processes", "--save", ck]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assertSameCheckpoint(uninterrupted(), ck);
    const after = filesOf(where, "ck.safetensors");
    assert.deepEqual(after.others, [], "leftovers of the crashed save are removed by the next complete save");
    assert.deepEqual(readdirSync(where).sort(), ["ck.safetensors", ...after.listed].sort());
  });
}

test("processes: a parted checkpoint with a part missing is refused, naming the part (resume and eval)", { skip }, async () => {
  const where = join(dir, "missing");
  mkdirSync(where);
  const ck = join(where, "ck.safetensors");
  const p = await runMpi(2, "vader", ["train", ...COMMON, "--epochs", "1", "--executor", "processes", "--save", ck]);
  assert.equal(p.code, 0, p.stderr);
  const { listed } = filesOf(where, "ck.safetensors");
  // A copy of the checkpoint that forgot one part.
  const copy = join(dir, "copy");
  mkdirSync(copy);
  copyFileSync(ck, join(copy, "ck.safetensors"));
  copyFileSync(join(where, listed[0]), join(copy, listed[0]));
  const resume = spawnSync(process.execPath, [MAIN, "train", "--resume", join(copy, "ck.safetensors"), "--epochs", "2", "--executor", "inline", "--quiet"], { encoding: "utf8" });
  assert.equal(resume.status, 1, resume.stderr);
  const part = listed[1].replace(/\./g, "\\.");
  assert.match(resume.stderr, new RegExp(`ck\\.safetensors is incomplete: part ${part} \\(2 of 2\\) is missing`));
  const ev = spawnSync(process.execPath, [MAIN, "eval", "--checkpoint", join(copy, "ck.safetensors"), "--data", "slice"], { encoding: "utf8" });
  assert.notEqual(ev.status, 0);
  assert.match(ev.stderr, new RegExp(`part ${part} \\(2 of 2\\) is missing`));
  // With the part back, both read it.
  copyFileSync(join(where, listed[1]), join(copy, listed[1]));
  const ok = spawnSync(process.execPath, [MAIN, "eval", "--checkpoint", join(copy, "ck.safetensors"), "--data", "slice", "--limit", "64"], { encoding: "utf8" });
  assert.equal(ok.status, 0, ok.stderr);
});

test("processes: an asynchronous run's parts hold what a gathered file holds, its policy buffers and their metadata too", { skip }, async () => {
  const args = ["train", ...BASE, "--schedule", "async", "--method", "pipemare", "--executor", "processes"];
  const parts = join(dir, "async-parts.safetensors"), file = join(dir, "async-file.safetensors");
  const p = await runMpi(2, "vader", [...args, "--save", parts]);
  assert.equal(p.code, 0, p.stderr);
  const f = await runMpi(2, "vader", [...args, "--save-layout", "file", "--save", file]);
  assert.equal(f.code, 0, f.stderr);
  assertSameCheckpoint(file, parts);
  const a = loadCheckpoint(parts), b = loadCheckpoint(file);
  assert.equal(a.metadata.format, "pipewright-manifest");
  type Extra = { async?: unknown; pipeline?: unknown };
  assert.ok((a.extra as Extra).async, "an asynchronous run saves its state");
  assert.deepEqual((a.extra as Extra).async, (b.extra as Extra).async);
  assert.deepEqual((a.extra as Extra).pipeline, (b.extra as Extra).pipeline);
  assert.deepEqual([...a.extraTensors.keys()].sort(), [...b.extraTensors.keys()].sort());
  assert.ok(a.extraTensors.size > 0);
  for (const [k, t] of b.extraTensors) assert.deepEqual(Buffer.from(a.extraTensors.get(k)!.data.buffer), Buffer.from(t.data.buffer), `extra ${k} differs`);
});
