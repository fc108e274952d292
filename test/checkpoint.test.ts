import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  serializeSafetensors, parseSafetensors, readSafetensors, writeSafetensors, writeFileAtomic,
  saveCheckpoint, loadCheckpoint, checkpointEntries,
} from "../src/checkpoint/index.js";
import { Tensor } from "../src/tensor/tensor.js";
import { Rng } from "../src/tensor/random.js";

const tmp = mkdtempSync(join(tmpdir(), "pipewright-ckpt-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

/** A file as written by the reference implementation (Python safetensors 0.8.0, `safetensors.serialize`):
 *  tensors a = [9] shape [1], w = [1, 2, 3, 4] shape [2, 2], metadata {"k": "v"}. */
const REFERENCE_HEX =
  "8800000000000000" +
  Buffer.from('{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
    '"w":{"dtype":"F32","shape":[2,2],"data_offsets":[4,20]}} ').toString("hex") +
  "00001041" + "0000803f" + "00000040" + "00004040" + "00008040";

/** A file with an arbitrary header object and data bytes, to build malformed inputs. */
function craft(header: unknown, dataBytes: number, headerText = JSON.stringify(header)): Buffer {
  const h = Buffer.from(headerText, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
}

test("safetensors: reads the reference implementation's bytes and writes identical ones", () => {
  const ref = Buffer.from(REFERENCE_HEX, "hex");
  const { tensors, metadata } = parseSafetensors(ref, "ref");
  assert.deepEqual(metadata, { k: "v" });
  assert.deepEqual([...tensors.keys()], ["a", "w"]);
  assert.deepEqual(tensors.get("a")!.shape, [1]);
  assert.deepEqual(Array.from(tensors.get("a")!.data), [9]);
  assert.deepEqual(tensors.get("w")!.shape, [2, 2]);
  assert.deepEqual(Array.from(tensors.get("w")!.data), [1, 2, 3, 4]);
  assert.deepEqual(serializeSafetensors([["a", Tensor.from([9], [1])], ["w", Tensor.from([[1, 2], [3, 4]])]], { k: "v" }), ref);
});

test("safetensors: round-trip of many shapes with metadata; header padded to 8 bytes; order kept", () => {
  const rng = new Rng(5);
  const tensors = new Map<string, Tensor>([
    ["layers.1.weight", Tensor.randn([3, 4], rng)],
    ["0", Tensor.randn([5], rng)],
    ["scalar", Tensor.scalar(-2.5)],
    ["empty", Tensor.zeros([0, 3])],
    ["layers.0.bias", Tensor.randn([2, 1, 3], rng)],
  ]);
  // A view into a larger buffer must be written from its own offset.
  const big = Tensor.randn([10], rng);
  tensors.set("view", new Tensor(big.data.subarray(4, 7), [3]));
  const meta = { note: "héllo \"quoted\"", step: "12" };
  for (let extra = 0; extra < 9; extra++) {
    const file = join(tmp, `rt${extra}.safetensors`);
    writeSafetensors(file, tensors, { ...meta, pad: "x".repeat(extra) });
    const bytes = readFileSync(file);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    assert.equal(headerLen % 8, 0);
    const back = readSafetensors(file);
    assert.deepEqual(back.metadata, { ...meta, pad: "x".repeat(extra) });
    assert.deepEqual([...back.tensors.keys()], [...tensors.keys()]);
    for (const [k, t] of tensors) {
      assert.deepEqual(back.tensors.get(k)!.shape, t.shape);
      assert.deepEqual(back.tensors.get(k)!.data, t.data);
    }
  }
  assert.deepEqual(parseSafetensors(serializeSafetensors(new Map())).tensors.size, 0);
  assert.throws(() => serializeSafetensors([["a", Tensor.zeros([1])], ["a", Tensor.zeros([1])]]), /"a" appears twice/);
});

test("safetensors: truncated files are reported as truncated with expected and found sizes", () => {
  const full = serializeSafetensors(new Map([["w", Tensor.ones([4, 4])]]), { a: "b" });
  const file = join(tmp, "trunc.safetensors");
  writeFileSync(file, full.subarray(0, full.length - 7));
  assert.throws(() => readSafetensors(file), new RegExp(`${file}: truncated: expected ${full.length} bytes, found ${full.length - 7}`));
  writeFileSync(file, full.subarray(0, 20));
  assert.throws(() => readSafetensors(file), new RegExp(`${file}: truncated: header length \\d+ needs at least \\d+ bytes, found 20`));
  writeFileSync(file, full.subarray(0, 5));
  assert.throws(() => readSafetensors(file), /truncated: expected at least 8 bytes \(the header length\), found 5/);
  assert.throws(() => parseSafetensors(Buffer.concat([full, Buffer.alloc(4)]), "long"), /long: expected exactly \d+ bytes, found \d+ \(trailing data/);
});

test("safetensors: overlapping, gapped, mis-sized, non-F32 and bad-JSON headers are rejected", () => {
  const f32 = (shape: number[], b: number, e: number) => ({ dtype: "F32", shape, data_offsets: [b, e] });
  assert.throws(() => parseSafetensors(craft({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, 12), "ov"),
    /ov: tensor "b" \[4, 12\] overlaps tensor "a" ending at 8/);
  assert.throws(() => parseSafetensors(craft({ a: f32([2], 0, 8), b: f32([2], 12, 20) }, 20), "gap"), /gap in the data: tensor "b" starts at 12/);
  assert.throws(() => parseSafetensors(craft({ a: f32([3], 0, 8) }, 8), "sz"), /tensor "a" of shape \[3\] needs 12 bytes \(F32\) but data_offsets \[0, 8\] span 8/);
  assert.throws(() => parseSafetensors(craft({ a: { dtype: "F16", shape: [2], data_offsets: [0, 4] } }, 4), "h"), /tensor "a" has dtype "F16"; pipewright reads only F32/);
  assert.throws(() => parseSafetensors(craft({ a: { dtype: "Q9", shape: [2], data_offsets: [0, 4] } }, 4), "q"), /valid safetensors dtypes: BOOL/);
  assert.throws(() => parseSafetensors(craft(null, 0, '{"a": {"dtype": "F32",'), "bj"), /bj: header is not valid JSON/);
  assert.throws(() => parseSafetensors(craft(null, 0, "[1, 2]"), "arr"), /header must be a JSON object starting with "\{"/);
  assert.throws(() => parseSafetensors(craft({ a: f32([-1], 0, 0) }, 0), "neg"), /invalid shape \[-1\]/);
  assert.throws(() => parseSafetensors(craft({ a: f32([1], 4, 0) }, 4), "off"), /invalid data_offsets \[4,0\]/);
  assert.throws(() => parseSafetensors(craft({ __metadata__: { k: 1 } }, 0), "md"), /__metadata__ value for "k" must be a string/);
  // Header length far beyond the file.
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(2n ** 60n);
  assert.throws(() => parseSafetensors(huge, "huge"), /huge: truncated: header length 1152921504606846976/);
});

test("atomic write: a failing write leaves the previous file intact and no temp files behind", () => {
  const dir = mkdtempSync(join(tmp, "atomic-"));
  const file = join(dir, "model.safetensors");
  writeSafetensors(file, new Map([["w", Tensor.full([3], 1)]]), { step: "1" });
  const before = readFileSync(file);
  assert.throws(() => writeFileAtomic(file, (write) => {
    write(Buffer.from("partial bytes of a new checkpoint"));
    throw new Error("serializer exploded");
  }), /writing .*model\.safetensors failed, previous contents left untouched: serializer exploded/);
  assert.deepEqual(readFileSync(file), before);
  assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
  // Bad input in the tensors (after the file exists) also leaves it alone.
  assert.throws(() => saveCheckpoint(file, { model: new Map([["w", Tensor.zeros([1])]]), step: -1, epoch: 0 }), /step must be a non-negative integer, got -1/);
  assert.deepEqual(readFileSync(file), before);
  // A directory that does not exist.
  assert.throws(() => writeFileAtomic(join(dir, "no", "such", "x.bin"), Buffer.from("x")), /creating a temp file in .*no\/such failed/);
  // A successful write replaces the file.
  writeSafetensors(file, new Map([["w", Tensor.full([3], 2)]]));
  assert.deepEqual(Array.from(readSafetensors(file).tensors.get("w")!.data), [2, 2, 2]);
  assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
});

test("checkpoint: model, optimizer tensors, step, epoch, spec and extra round-trip", () => {
  const rng = new Rng(11);
  const model = new Map([["layers.0.weight", Tensor.randn([4, 3], rng)], ["layers.0.bias", Tensor.randn([4], rng)]]);
  const optimizer = {
    kind: "adamw",
    groups: [{ hyper: { lr: 0.001, eps: 1e-8 }, baseLr: 0.001, params: ["layers.0.weight", "layers.0.bias"] }],
    steps: { "layers.0.weight": 7, "layers.0.bias": 7 },
    tensors: new Map([["layers.0.weight.exp_avg", Tensor.randn([4, 3], rng)], ["layers.0.bias.exp_avg_sq", Tensor.randn([4], rng)]]),
  };
  const spec = { name: "mlp", input: 3, hidden: [], classes: 4 };
  const extra = { batchInEpoch: 3, rng: { dropout: [1, 2, 3, 4] } };
  const file = join(tmp, "ck.safetensors");
  saveCheckpoint(file, { model, optimizer, step: 7, epoch: 2, modelSpec: spec, extra });

  // The raw file: model names as-is, optimizer under "optim.", metadata as JSON strings.
  const raw = readSafetensors(file);
  assert.deepEqual([...raw.tensors.keys()].sort(),
    ["layers.0.bias", "layers.0.weight", "optim.layers.0.bias.exp_avg_sq", "optim.layers.0.weight.exp_avg"]);
  assert.equal(raw.metadata.format, "pipewright");
  assert.equal(raw.metadata.step, "7");
  assert.deepEqual(JSON.parse(raw.metadata.model_spec), spec);

  const ck = loadCheckpoint(file);
  assert.equal(ck.step, 7);
  assert.equal(ck.epoch, 2);
  assert.deepEqual(ck.modelSpec, spec);
  assert.deepEqual(ck.extra, extra);
  for (const [k, t] of model) assert.deepEqual(ck.model.get(k)!.data, t.data);
  assert.equal(ck.model.size, 2);
  assert.equal(ck.optimizer!.kind, "adamw");
  assert.deepEqual(ck.optimizer!.groups, optimizer.groups);
  assert.deepEqual(ck.optimizer!.steps, optimizer.steps);
  for (const [k, t] of optimizer.tensors) {
    assert.deepEqual(ck.optimizer!.tensors.get(k)!.shape, t.shape);
    assert.deepEqual(ck.optimizer!.tensors.get(k)!.data, t.data);
  }

  const bare = join(tmp, "bare.safetensors");
  saveCheckpoint(bare, { model, step: 0, epoch: 0 });
  const b = loadCheckpoint(bare);
  assert.equal(b.optimizer, undefined);
  assert.equal(b.modelSpec, undefined);
});

test("checkpoint: foreign files, bad metadata and reserved names are errors naming the file", () => {
  const plain = join(tmp, "plain.safetensors");
  writeSafetensors(plain, new Map([["w", Tensor.zeros([1])]]));
  assert.throws(() => loadCheckpoint(plain), new RegExp(`${plain}: not a pipewright checkpoint`));
  const { tensors, metadata } = checkpointEntries({ model: new Map([["w", Tensor.zeros([1])]]), step: 1, epoch: 0 });
  const badStep = join(tmp, "badstep.safetensors");
  writeSafetensors(badStep, tensors, { ...metadata, step: "1.5" });
  assert.throws(() => loadCheckpoint(badStep), /metadata "step" must be a non-negative integer, found "1.5"/);
  writeSafetensors(badStep, tensors, { ...metadata, extra: "{oops" });
  assert.throws(() => loadCheckpoint(badStep), /metadata "extra" is not valid JSON/);
  assert.throws(() => checkpointEntries({ model: new Map([["optim.x", Tensor.zeros([1])]]), step: 0, epoch: 0 }), /"optim\.x" may not start with "optim\."/);
  assert.throws(() => loadCheckpoint(join(tmp, "absent.safetensors")), /absent\.safetensors: file not found/);
});
