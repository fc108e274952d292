#!/usr/bin/env node
// Makes the small Fashion-MNIST slice committed under fixtures/data for tests: the first 2000
// training and first 500 test examples of Debian's dataset-fashion-mnist files, re-encoded as
// gzipped IDX with the same file names (so `loadFashionMnist({dir: "slice"})` reads it like the real
// thing). Needs `npm run build` first (it reuses the project's IDX reader/writer).
//   usage: node scripts/make-data-slice.mjs [SRC_DIR=/usr/share/datasets/fashion-mnist] [OUT_DIR=fixtures/data]
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { readIdx, writeIdx } from "../dist/src/data/idx.js";
import { DEFAULT_FASHION_MNIST_DIR, FASHION_MNIST_FILES } from "../dist/src/data/fashion-mnist.js";

const src = process.argv[2] ?? DEFAULT_FASHION_MNIST_DIR;
const out = process.argv[3] ?? new URL("../fixtures/data", import.meta.url).pathname;
const counts = { train: 2000, test: 500 };

mkdirSync(out, { recursive: true });
for (const split of ["train", "test"]) {
  const n = counts[split];
  for (const kind of ["images", "labels"]) {
    const name = FASHION_MNIST_FILES[split][kind];
    const arr = readIdx(join(src, name));
    const rowSize = arr.dims.slice(1).reduce((a, b) => a * b, 1);
    writeIdx(join(out, name), [n, ...arr.dims.slice(1)], arr.data.subarray(0, n * rowSize), true);
    console.log(`${name}: ${n} of ${arr.dims[0]} examples -> ${join(out, name)}`);
  }
}
