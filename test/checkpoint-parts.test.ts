// Checkpoints in parts (src/checkpoint/parts.ts) without MPI: a manifest and its parts load as the
// same checkpoint as one file holding the same state (the oracle), a save that stops before its
// manifest leaves the previous checkpoint loadable, and a missing, changed or foreign part is an
// error naming it. The Python reader (scripts/pipewright_checkpoint.py) merges parts the same way.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  loadCheckpoint, newPartName, saveCheckpoint, saveManifest, writePart, MANIFEST_FORMAT, type PartInfo,
} from "../src/checkpoint/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";

const tmp = mkdtempSync(join(tmpdir(), "pipewright-parts-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => { const d = join(tmp, String(n++)); mkdirSync(d); return d; };

const rng = new Rng(3);
const t = (...shape: number[]): Tensor => Tensor.randn(shape, rng);
/** A model of three units held by two ranks: rank 0 has unit 0 and 2 (interleaved), rank 1 unit 1. */
const MODEL: [string, Tensor][] = [["layers.0.weight", t(3, 2)], ["layers.0.bias", t(3)], ["layers.1.weight", t(2, 3)], ["layers.2.weight", t(4)]];
const OPT = { kind: "sgd", groups: [{ hyper: { lr: 0.1 }, baseLr: 0.1, params: ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.2.weight"] }],
  steps: { "layers.0.weight": 2, "layers.0.bias": 2, "layers.1.weight": 2, "layers.2.weight": 2 } };
const MOMENTUM = new Map(MODEL.map(([k, v]) => [`${k}.momentum_buffer`, new Tensor(v.data.map((x) => x * 0.5), [...v.shape])]));
const get = (name: string): Tensor => MODEL.find(([k]) => k === name)![1];

/** Writes a two-part checkpoint at `path` for step `step`; returns the parts (manifest written when asked). */
function savePartsAt(path: string, step: number, manifest = true): PartInfo[] {
  const rank0: [string, Tensor][] = [
    ["layers.0.weight", get("layers.0.weight")], ["layers.0.bias", get("layers.0.bias")], ["layers.2.weight", get("layers.2.weight")],
    ...["layers.0.weight", "layers.0.bias", "layers.2.weight"].map((k): [string, Tensor] => [`optim.${k}.momentum_buffer`, MOMENTUM.get(`${k}.momentum_buffer`)!]),
    ["extra.async.pipemare_u.layers.0.weight", t(6)],
  ];
  const rank1: [string, Tensor][] = [["layers.1.weight", get("layers.1.weight")], ["optim.layers.1.weight.momentum_buffer", MOMENTUM.get("layers.1.weight.momentum_buffer")!]];
  const parts = [writePart(path, newPartName(path, step, 0), rank0, 0), writePart(path, newPartName(path, step, 1), rank1, 1)];
  if (manifest) {
    saveManifest(path, { parts, order: MODEL.map(([k]) => k), step, epoch: step, optimizer: OPT, modelSpec: { name: "mlp" }, extra: { history: [] } });
  }
  return parts;
}

const bytesOf = (x: Tensor): Buffer => Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength);

test("a manifest and its parts load as the single file with the same state (model in state-dict order, optimizer, extra)", () => {
  const dir = freshDir();
  const parted = join(dir, "p.safetensors"), single = join(dir, "s.safetensors");
  savePartsAt(parted, 4);
  const a = loadCheckpoint(parted);
  saveCheckpoint(single, { model: new Map(MODEL), optimizer: { ...OPT, tensors: MOMENTUM } as never, step: 4, epoch: 4, modelSpec: { name: "mlp" },
    extra: { history: [] }, extraTensors: new Map([["async.pipemare_u.layers.0.weight", a.extraTensors.get("async.pipemare_u.layers.0.weight")!]]) });
  const b = loadCheckpoint(single);
  assert.equal(a.metadata.format, MANIFEST_FORMAT);
  assert.deepEqual([...a.model.keys()], MODEL.map(([k]) => k), "the manifest's order, not rank order");
  for (const [k, v] of b.model) assert.deepEqual(bytesOf(a.model.get(k)!), bytesOf(v), k);
  assert.deepEqual([...a.optimizer!.tensors.keys()].sort(), [...b.optimizer!.tensors.keys()].sort());
  for (const [k, v] of b.optimizer!.tensors) assert.deepEqual(bytesOf(a.optimizer!.tensors.get(k)!), bytesOf(v), k);
  assert.deepEqual({ ...a.optimizer, tensors: null }, { ...b.optimizer, tensors: null });
  assert.deepEqual([a.step, a.epoch, a.modelSpec, a.extra], [b.step, b.epoch, b.modelSpec, b.extra]);
  assert.deepEqual([...a.extraTensors.keys()], ["async.pipemare_u.layers.0.weight"]);
});

test("a save that stops before its manifest leaves the previous checkpoint; the next manifest removes the leftovers", () => {
  const dir = freshDir();
  const path = join(dir, "ck.safetensors");
  const first = savePartsAt(path, 1);
  // Save 2 crashes: its parts are complete (and a temp file half written) but no manifest names them.
  const crashed = savePartsAt(path, 2, false);
  writeFileSync(join(dir, `.ck.safetensors.part-2-0000-r0.safetensors.tmp-1-abcd`), "half");
  assert.equal(loadCheckpoint(path).step, 1);
  assert.deepEqual(JSON.parse(loadCheckpoint(path).metadata.parts).map((p: PartInfo) => p.file), first.map((p) => p.file));
  const third = savePartsAt(path, 3);
  assert.equal(loadCheckpoint(path).step, 3);
  const left = readdirSync(dir).sort();
  assert.deepEqual(left, ["ck.safetensors", ...third.map((p) => p.file)].sort(), "older and crashed parts and temp files are gone");
  for (const p of [...first, ...crashed]) assert.ok(!existsSync(join(dir, p.file)));
});

test("a part that is missing, changed, truncated, foreign or named outside the directory is an error naming it", () => {
  const dir = freshDir();
  const path = join(dir, "ck.safetensors");
  const parts = savePartsAt(path, 5);
  const second = join(dir, parts[1].file);
  const good = readFileSync(second);
  rmSync(second);
  assert.throws(() => loadCheckpoint(path), new RegExp(`ck.safetensors is incomplete: part ${parts[1].file.replace(/\./g, "\\.")} \\(2 of 2\\) is missing`));
  const flipped = Buffer.from(good);
  flipped[flipped.length - 1] ^= 1;
  writeFileSync(second, flipped);
  assert.throws(() => loadCheckpoint(path), /does not match the manifest's SHA-256/);
  writeFileSync(second, good.subarray(0, good.length - 4));
  assert.throws(() => loadCheckpoint(path), new RegExp(`has ${good.length - 4} bytes, the manifest says ${good.length}`));
  writeFileSync(second, good);
  assert.equal(loadCheckpoint(path).step, 5);
  // The manifest must not point elsewhere (checked before any file is opened).
  const evil = { file: "../x.safetensors", bytes: 0, sha256: createHash("sha256").update("").digest("hex"), tensors: [] };
  assert.throws(() => saveManifest(path, { parts: [evil], order: [], step: 0, epoch: 0 }), /must be a file "ck\.safetensors\.part-\*"/);
});

test("saving one file at a parted checkpoint's path removes its parts; a stray tensor name in a part is refused", () => {
  const dir = freshDir();
  const path = join(dir, "ck.safetensors");
  savePartsAt(path, 1);
  saveCheckpoint(path, { model: new Map(MODEL), step: 2, epoch: 2 });
  assert.deepEqual(readdirSync(dir), ["ck.safetensors"]);
  assert.equal(loadCheckpoint(path).step, 2);
  const part = writePart(path, newPartName(path, 3, 0), [["layers.9.weight", t(2)]], 0);
  assert.throws(() => saveManifest(path, { parts: [part], order: ["layers.0.weight"], step: 3, epoch: 3 }), /holds "layers\.9\.weight", which is neither in the model order/);
  assert.equal(loadCheckpoint(path).step, 2, "a refused manifest leaves the previous checkpoint");
});

const SCRIPT = fileURLToPath(new URL("../../scripts/pipewright_checkpoint.py", import.meta.url));
const numpy = spawnSync("python3", ["-c", "import numpy"]).status === 0;

test("the Python reader merges parts into the tensors pipewright loads", { skip: numpy ? false : "python3 with numpy not found" }, () => {
  const dir = freshDir();
  const path = join(dir, "ck.safetensors");
  const parts = savePartsAt(path, 7);
  const r = spawnSync("python3", [SCRIPT, path], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { step: string; tensors: [string, number[], string][] };
  const ck = loadCheckpoint(path);
  const ours = [...ck.model].map(([k, v]) => [k, v.shape, createHash("sha256").update(bytesOf(v)).digest("hex")]);
  assert.deepEqual(out.tensors.slice(0, ours.length), ours);
  assert.equal(out.tensors.length, ck.model.size + ck.optimizer!.tensors.size + ck.extraTensors.size);
  assert.equal(out.step, "7");
  rmSync(join(dir, parts[0].file));
  const missing = spawnSync("python3", [SCRIPT, path], { encoding: "utf8" });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /is incomplete: part .*-r0\.safetensors \(1 of 2\) is missing/);
});

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

test("pipewright checkpoint merge writes the parts as one file with the same content, also in place", () => {
  const dir = freshDir();
  const path = join(dir, "ck.safetensors"), out = join(dir, "merged.safetensors");
  savePartsAt(path, 9);
  const before = loadCheckpoint(path);
  const r = spawnSync(process.execPath, [MAIN, "checkpoint", "merge", "--checkpoint", path, "--out", out], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /4 model tensor\(s\) from 2 part\(s\)/);
  const same = (a: ReturnType<typeof loadCheckpoint>, b: ReturnType<typeof loadCheckpoint>): void => {
    assert.deepEqual([...a.model.keys()], [...b.model.keys()]);
    for (const [k, v] of a.model) assert.deepEqual(bytesOf(b.model.get(k)!), bytesOf(v), k);
    for (const [k, v] of a.optimizer!.tensors) assert.deepEqual(bytesOf(b.optimizer!.tensors.get(k)!), bytesOf(v), k);
    assert.deepEqual({ ...a.optimizer, tensors: null }, { ...b.optimizer, tensors: null });
    assert.deepEqual([a.step, a.epoch, a.modelSpec, a.extra, [...a.extraTensors.keys()]], [b.step, b.epoch, b.modelSpec, b.extra, [...b.extraTensors.keys()]]);
  };
  const merged = loadCheckpoint(out);
  assert.equal(merged.metadata.format, "pipewright");
  same(before, merged);
  const inPlace = spawnSync(process.execPath, [MAIN, "checkpoint", "merge", "--checkpoint", path, "--out", path], { encoding: "utf8" });
  assert.equal(inPlace.status, 0, inPlace.stderr);
  assert.deepEqual(readdirSync(dir).sort(), ["ck.safetensors", "merged.safetensors"], "the parts are gone");
  same(before, loadCheckpoint(path));
  const bad = spawnSync(process.execPath, [MAIN, "checkpoint", "merge", "--checkpoint", path], { encoding: "utf8" });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--checkpoint FILE and --out FILE are required/);
});

test("loading with a filter reads only the parts holding wanted tensors (an MPI rank's own stages); the others must still exist", () => {
  const dir = freshDir();
  const path = join(dir, "p.safetensors");
  const [p0, p1] = savePartsAt(path, 2);
  const want = (name: string): boolean => name === "layers.1.weight" || name === "optim.layers.1.weight.momentum_buffer";
  const full = loadCheckpoint(path);
  // Rank 0's part changed in place (same size): the filtered load does not read it, the full one refuses it.
  const file0 = join(dir, p0.file);
  const bytes = readFileSync(file0);
  bytes[bytes.length - 1] ^= 0xff;
  writeFileSync(file0, bytes);
  const mine = loadCheckpoint(path, want);
  assert.deepEqual([...mine.model.keys()], ["layers.1.weight"]);
  assert.deepEqual(bytesOf(mine.model.get("layers.1.weight")!), bytesOf(full.model.get("layers.1.weight")!));
  assert.deepEqual([...mine.optimizer!.tensors.keys()], ["layers.1.weight.momentum_buffer"]);
  assert.deepEqual(mine.extra, full.extra);
  assert.throws(() => loadCheckpoint(path), /does not match the manifest's SHA-256/);
  // A part that is missing or of another size is an error even when none of its tensors is wanted.
  writeFileSync(file0, bytes.subarray(1));
  assert.throws(() => loadCheckpoint(path, want), /has \d+ bytes, the manifest says/);
  rmSync(file0);
  assert.throws(() => loadCheckpoint(path, want), new RegExp(`part ${p0.file} \\(1 of 2\\) is missing`));
  assert.ok(p1.tensors.includes("layers.1.weight"));
});

test("checkpointExtra reads the trainer state from the header alone, of a single file and of a manifest", async () => {
  const { checkpointExtra } = await import("../src/checkpoint/index.js");
  const dir = freshDir();
  const parted = join(dir, "p.safetensors"), single = join(dir, "s.safetensors");
  savePartsAt(parted, 3);
  saveCheckpoint(single, { model: new Map(MODEL), step: 3, epoch: 1, extra: { config: { lr: 0.5 }, history: [] } });
  assert.deepEqual(checkpointExtra(parted), loadCheckpoint(parted).extra);
  assert.deepEqual(checkpointExtra(single), { config: { lr: 0.5 }, history: [] });
  // Only the header is read: a file cut inside its tensor data still gives it (a full load refuses it).
  const whole = readFileSync(single);
  writeFileSync(single, whole.subarray(0, whole.length - 8));
  assert.deepEqual(checkpointExtra(single), { config: { lr: 0.5 }, history: [] });
  assert.throws(() => loadCheckpoint(single), /truncated/);
  writeFileSync(single, whole.subarray(0, 12));
  assert.throws(() => checkpointExtra(single), /truncated/);
});
