import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, copyFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import {
  parseIdx, readIdx, encodeIdx, writeIdx, loadFashionMnist, fashionMnistSliceDir, FASHION_MNIST_FILES,
  FASHION_MNIST_MEAN, FASHION_MNIST_STD, DataLoader, epochSeed, microbatchSizes, splitTensor, mergeTensors,
  splitLabels, mergeLabels, splitBatch, loadTextCorpus, textCorpusPath, textCorpusFromBytes, TextBatcher,
  sampleWindows, encodeText, decodeBytes, type TensorDataset,
} from "../src/data/index.js";
import { Rng } from "../src/tensor/random.js";
import { Tensor } from "../src/tensor/tensor.js";

const tmp = mkdtempSync(join(tmpdir(), "pipewright-data-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const APT_HINT = /apt-get install dataset-fashion-mnist/;

// ---------- IDX ----------

test("IDX: a hand-built header parses to the right dims and data", () => {
  // 00 00 08 02 | dims 2, 3 (big-endian) | 6 bytes of data
  const raw = Uint8Array.from([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 251, 252]);
  for (const buf of [raw, gzipSync(raw)]) {
    const arr = parseIdx(buf, "hand.idx");
    assert.deepEqual(arr.dims, [2, 3]);
    assert.deepEqual(Array.from(arr.data), [1, 2, 3, 250, 251, 252]);
  }
});

test("IDX: encode/write then read round-trips, gzipped and raw", () => {
  const rng = new Rng(1);
  const dims = [5, 4, 3];
  const data = Uint8Array.from({ length: 60 }, () => rng.int(256));
  for (const name of ["a-idx3-ubyte.gz", "a-idx3-ubyte"]) {
    const file = join(tmp, name);
    writeIdx(file, dims, data);
    const bytes = readFileSync(file);
    assert.equal(bytes[0] === 0x1f && bytes[1] === 0x8b, name.endsWith(".gz"));
    const back = readIdx(file);
    assert.deepEqual(back.dims, dims);
    assert.deepEqual(back.data, data);
  }
});

test("IDX: truncated raw file is reported with expected vs found bytes and how to get the data", () => {
  const full = encodeIdx([10, 28, 28], new Uint8Array(7840), false);
  const file = join(tmp, "trunc-idx3-ubyte");
  writeFileSync(file, full.subarray(0, full.length - 100));
  assert.throws(() => readIdx(file), (e: Error) => {
    assert.match(e.message, new RegExp(`${file}.*truncated: expected ${full.length} bytes.*found ${full.length - 100}`));
    assert.match(e.message, APT_HINT);
    assert.match(e.message, /--data DIR/);
    return true;
  });
  // Header itself cut short.
  writeFileSync(file, full.subarray(0, 6));
  assert.throws(() => readIdx(file), /truncated: expected 16 header bytes for rank 3, found 6 bytes/);
});

test("IDX: truncated gzip stream, bad magic, trailing data and unsupported dtype are errors naming the file", () => {
  const gz = encodeIdx([100, 28, 28], Uint8Array.from({ length: 78400 }, (_, i) => i % 251), true);
  const cut = join(tmp, "cut.gz");
  writeFileSync(cut, gz.subarray(0, Math.floor(gz.length / 2)));
  assert.throws(() => readIdx(cut), (e: Error) => e.message.includes(cut) && /corrupt or truncated/.test(e.message) && APT_HINT.test(e.message));

  const badMagic = join(tmp, "magic.idx");
  writeFileSync(badMagic, Uint8Array.from([0x12, 0x34, 8, 1, 0, 0, 0, 1, 7]));
  assert.throws(() => readIdx(badMagic), new RegExp(`${badMagic}: not an IDX file: expected magic 00 00 <dtype> <rank>, found 12 34 08 01`));

  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 1, 7, 9]), "t.idx"), /t\.idx: expected exactly 9 bytes .* found 10 \(trailing data\)/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]), "f.idx"), /dtype 0x0d \(float\) is not supported; only 0x08 \(ubyte\)/);
  assert.throws(() => readIdx(join(tmp, "missing.gz")), /missing\.gz: file not found.*apt-get install dataset-fashion-mnist/);
});

// ---------- Fashion-MNIST ----------

test("Fashion-MNIST slice loads with the documented counts, shapes and normalisation", () => {
  const dir = fashionMnistSliceDir();
  for (const [split, n] of [["train", 2000], ["test", 500]] as const) {
    const ds = loadFashionMnist({ dir: "slice", split });
    assert.equal(ds.n, n);
    assert.equal(ds.images.length, n * 784);
    assert.equal(ds.labels.length, n);
    assert.deepEqual(ds.sampleShape, [1, 28, 28]);
    // Independent decode of the same file with zlib + fixed offsets (16-byte header, 8-byte for labels).
    const rawImages = gunzipSync(readFileSync(join(dir, FASHION_MNIST_FILES[split].images))).subarray(16);
    const rawLabels = gunzipSync(readFileSync(join(dir, FASHION_MNIST_FILES[split].labels))).subarray(8);
    for (const i of [0, 1, 783, 784 * 7 + 400, n * 784 - 1]) {
      assert.ok(Math.abs(ds.images[i] - (rawImages[i] / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD) < 1e-5);
    }
    assert.deepEqual(Array.from(ds.labels), Array.from(rawLabels));
    const counts = new Array<number>(10).fill(0);
    for (const l of ds.labels) counts[l]++;
    assert.ok(counts.every((c) => c > 0), `every class present in the ${split} slice: ${counts}`);
  }
  // Usable directly as a DataLoader dataset.
  const first = [...new DataLoader(loadFashionMnist({ dir: "slice", split: "test" }), { batchSize: 64, seed: 1 }).epoch(0)][0];
  assert.deepEqual(first.x.shape, [64, 1, 28, 28]);
  const unit = loadFashionMnist({ dir: "slice", split: "test", limit: 3, normalize: "unit" });
  assert.equal(unit.n, 3);
  assert.equal(unit.images.length, 3 * 784);
  assert.ok(unit.images.every((v) => v >= 0 && v <= 1));
});

test("Fashion-MNIST: missing directory and corrupt file errors name the path and the apt package", () => {
  assert.throws(() => loadFashionMnist({ dir: join(tmp, "nope"), split: "train" }),
    (e: Error) => e.message.includes(join(tmp, "nope")) && APT_HINT.test(e.message));
  assert.throws(() => loadFashionMnist({ dir: "slice", split: "valid" as "train" }), /split must be "train" or "test", got "valid"/);
  // A directory with a good label file and a truncated image file.
  const dir = join(tmp, "fm-bad");
  rmSync(dir, { recursive: true, force: true });
  const src = fashionMnistSliceDir();
  const { images, labels } = FASHION_MNIST_FILES.test;
  mkdirSync(dir);
  copyFileSync(join(src, labels), join(dir, labels));
  const raw = gunzipSync(readFileSync(join(src, images)));
  writeFileSync(join(dir, images), gzipSync(raw.subarray(0, raw.length - 1)));
  assert.throws(() => loadFashionMnist({ dir, split: "test" }),
    (e: Error) => e.message.includes(join(dir, images)) && /truncated: expected \d+ bytes/.test(e.message) && APT_HINT.test(e.message));
  // Mismatched counts between images and labels.
  writeFileSync(join(dir, images), gzipSync(encodeIdx([3, 28, 28], new Uint8Array(3 * 784), false)));
  assert.throws(() => loadFashionMnist({ dir, split: "test" }), /holds 3 images but .* holds 500 labels/);
});

// ---------- DataLoader ----------

function toyDataset(n: number, feat = 3): TensorDataset {
  // Example i has inputs [i, i + 0.5, ...] and label i % 7, so a batch reveals which examples it holds.
  const inputs = new Float32Array(n * feat);
  for (let i = 0; i < n; i++) for (let k = 0; k < feat; k++) inputs[i * feat + k] = i + k * 0.5;
  return { inputs, labels: Int32Array.from({ length: n }, (_, i) => i % 7), n, sampleShape: [feat] };
}

function batchIds(b: { x: Tensor }, feat = 3): number[] {
  return Array.from({ length: b.x.shape[0] }, (_, i) => b.x.data[i * feat]);
}

test("DataLoader: each epoch is a seeded permutation; same seed same order, epochs differ", () => {
  const ds = toyDataset(103);
  const a = new DataLoader(ds, { batchSize: 10, seed: 42 });
  const b = new DataLoader(ds, { batchSize: 10, seed: 42 });
  assert.equal(a.length, 11);
  const epochIds = (l: DataLoader, e: number): number[] => [...l.epoch(e)].flatMap((x) => batchIds(x));
  const e0 = epochIds(a, 0);
  assert.deepEqual([...e0].sort((x, y) => x - y), Array.from({ length: 103 }, (_, i) => i));
  assert.deepEqual(e0, epochIds(b, 0));
  assert.notDeepEqual(e0, epochIds(a, 1));
  assert.notDeepEqual(e0, epochIds(new DataLoader(ds, { batchSize: 10, seed: 43 }), 0));
  // The order is exactly Rng(epochSeed(seed, epoch)).permutation(n).
  assert.deepEqual(e0, Array.from(new Rng(epochSeed(42, 0)).permutation(103)));
  // Labels travel with their examples, shapes are [b, ...sampleShape], last batch is partial.
  const batches = [...a.epoch(2)];
  for (const bt of batches) {
    assert.deepEqual(bt.x.shape, [bt.y.length, 3]);
    batchIds(bt).forEach((id, i) => { assert.equal(bt.y[i], id % 7); assert.equal(bt.x.data[i * 3 + 2], id + 1); });
  }
  assert.equal(batches.at(-1)!.y.length, 3);
  assert.deepEqual(batches.map((x) => x.index), Array.from({ length: 11 }, (_, i) => i));
});

test("DataLoader: resuming at (epoch, batch) reproduces the uninterrupted run; dropLast and no-shuffle", () => {
  const ds = toyDataset(50);
  const loader = new DataLoader(ds, { batchSize: 8, seed: 7 });
  const full = [...loader.epoch(3)];
  const resumed = [...new DataLoader(ds, { batchSize: 8, seed: 7 }).epoch(3, 4)];
  assert.equal(resumed.length, full.length - 4);
  resumed.forEach((b, i) => {
    assert.equal(b.index, i + 4);
    assert.deepEqual(b.x.data, full[i + 4].x.data);
    assert.deepEqual(b.y, full[i + 4].y);
  });
  assert.equal([...loader.epoch(0, loader.length)].length, 0);
  assert.throws(() => [...loader.epoch(0, loader.length + 1)], /startBatch 8 is outside 0\.\.7/);

  const dropping = new DataLoader(ds, { batchSize: 8, seed: 7, dropLast: true });
  assert.equal(dropping.length, 6);
  assert.ok([...dropping.epoch(0)].every((b) => b.y.length === 8));

  const ordered = new DataLoader(ds, { batchSize: 20, shuffle: false });
  assert.deepEqual([...ordered.epoch(5)].flatMap((b) => batchIds(b)), Array.from({ length: 50 }, (_, i) => i));
  assert.throws(() => new DataLoader(ds, { batchSize: 0 }), /batchSize must be a positive integer, got 0/);
});

// ---------- micro-batches ----------

test("micro-batches: sizes differ by at most one, split/merge round-trips, M > batch is an error", () => {
  assert.deepEqual(microbatchSizes(10, 3), [4, 3, 3]);
  assert.deepEqual(microbatchSizes(8, 4), [2, 2, 2, 2]);
  assert.deepEqual(microbatchSizes(5, 5), [1, 1, 1, 1, 1]);
  for (let n = 1; n <= 20; n++) {
    for (let m = 1; m <= n; m++) {
      const s = microbatchSizes(n, m);
      assert.equal(s.reduce((a, b) => a + b, 0), n);
      assert.ok(Math.max(...s) - Math.min(...s) <= 1);
    }
  }
  assert.throws(() => microbatchSizes(3, 4), /cannot split a batch of 3 into 4 micro-batches/);
  assert.throws(() => microbatchSizes(3, 0), /positive integer, got 0/);

  const x = Tensor.randn([7, 2, 3], new Rng(3));
  const parts = splitTensor(x, 3);
  assert.deepEqual(parts.map((p) => p.shape), [[3, 2, 3], [2, 2, 3], [2, 2, 3]]);
  // Part 1 starts at row 3 of the original.
  assert.deepEqual(parts[1].data, x.data.subarray(3 * 6, 5 * 6));
  const merged = mergeTensors(parts);
  assert.deepEqual(merged.shape, x.shape);
  assert.deepEqual(merged.data, x.data);
  assert.throws(() => mergeTensors([Tensor.zeros([2, 3]), Tensor.zeros([2, 4])]), /micro-batch 1 of shape \[2, 4\] with micro-batch 0 of shape \[2, 3\]/);

  const y = Int32Array.from([0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(mergeLabels(splitLabels(y, 3)), y);
  // Next-token targets: 2 labels per example for x [4, 2].
  const mbs = splitBatch({ x: Tensor.from([0, 1, 2, 3, 4, 5, 6, 7], [4, 2]), y: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) }, 3);
  assert.deepEqual(mbs.map((m) => Array.from(m.y)), [[1, 2, 3, 4], [5, 6], [7, 8]]);
  assert.deepEqual(mbs.map((m) => Array.from(m.x.data)), [[0, 1, 2, 3], [4, 5], [6, 7]]);
});

// ---------- text ----------

test("text corpus: UTF-8 bytes, train/val split, windows with next-byte targets, seeded by step", () => {
  const path = textCorpusPath();
  const corpus = loadTextCorpus(path);
  const bytes = readFileSync(path);
  assert.equal(corpus.vocabSize, 256);
  assert.deepEqual(Buffer.from(corpus.tokens), bytes);
  assert.equal(corpus.train.length + corpus.val.length, bytes.length);
  assert.equal(corpus.val.length, Math.floor(bytes.length * 0.1));
  assert.deepEqual(Buffer.from(corpus.val), bytes.subarray(bytes.length - corpus.val.length));

  const batcher = new TextBatcher(corpus, 4, 16, 9);
  const b = batcher.batchAt("train", 5);
  assert.deepEqual(b.x.shape, [4, 16]);
  assert.equal(b.y.length, 64);
  for (let r = 0; r < 4; r++) {
    const s = b.starts[r];
    for (let t = 0; t < 16; t++) {
      assert.equal(b.x.data[r * 16 + t], bytes[s + t]);
      assert.equal(b.y[r * 16 + t], bytes[s + t + 1]);
    }
  }
  assert.deepEqual(new TextBatcher(corpus, 4, 16, 9).batchAt("train", 5).starts, b.starts);
  assert.notDeepEqual(batcher.batchAt("train", 6).starts, b.starts);
  assert.ok(batcher.batchAt("val", 0).starts.every((s) => s + 17 <= corpus.val.length));

  assert.deepEqual(Array.from(encodeText("é€")), [0xc3, 0xa9, 0xe2, 0x82, 0xac]);
  assert.equal(decodeBytes(encodeText("héllo")), "héllo");
  assert.throws(() => sampleWindows(encodeText("abc"), 1, 3, new Rng(0)), /3 bytes is too short for context 3 \(needs at least 4\)/);
  assert.throws(() => new TextBatcher(textCorpusFromBytes(encodeText("x".repeat(30))), 2, 8), /val split has 3 bytes, too short for context 8/);
  assert.throws(() => loadTextCorpus(join(tmp, "none.txt")), /none\.txt: file not found/);
});
