// Fashion-MNIST from the Debian package's gzipped IDX files (or any directory with the same names).
// Normalisation (one rule everywhere, so PyTorch fixtures and checkpoints agree):
//   x = (pixel / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
// with the training set's mean 0.2860 and std 0.3530 (`normalize: "unit"` gives just pixel / 255).
import { existsSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DatasetFileError, FASHION_MNIST_HINT, readIdx, type IdxArray } from "./idx.js";

export const DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";
export const FASHION_MNIST_MEAN = 0.2860;
export const FASHION_MNIST_STD = 0.3530;
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
] as const;

export type FashionMnistSplit = "train" | "test";
export type Normalization = "standard" | "unit";

export const FASHION_MNIST_FILES: Record<FashionMnistSplit, { images: string; labels: string }> = {
  train: { images: "train-images-idx3-ubyte.gz", labels: "train-labels-idx1-ubyte.gz" },
  test: { images: "t10k-images-idx3-ubyte.gz", labels: "t10k-labels-idx1-ubyte.gz" },
};

export interface FashionMnistOptions {
  /** Directory with the four IDX files; "slice" = the small slice committed for tests. */
  dir?: string;
  split: FashionMnistSplit;
  /** Keep only the first `limit` examples. */
  limit?: number;
  normalize?: Normalization;
  /**
   * false: read the labels only (a pipeline rank without the first stage needs no images); images
   * and inputs are then empty and sampleShape is [0].
   */
  images?: boolean;
}

/** Also a TensorDataset (`inputs` is `images`), so `new DataLoader(loadFashionMnist(...), opts)` works. */
export interface FashionMnist {
  /** [n, 1, 28, 28], row-major, normalised as documented above. */
  images: Float32Array;
  inputs: Float32Array;
  labels: Int32Array;
  n: number;
  /** Shape of one example: [1, 28, 28] ([0] without images). */
  sampleShape: number[];
  dir: string;
}

/**
 * The directory of the committed slice (2000 train + 500 test examples). Found by walking up from
 * this module (src/data or dist/src/data) to the repository root.
 */
export function fashionMnistSliceDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "fixtures", "data");
    if (existsSync(join(candidate, FASHION_MNIST_FILES.test.labels))) return candidate;
    dir = dirname(dir);
  }
  throw new DatasetFileError(
    `the committed Fashion-MNIST slice (fixtures/data) was not found above ${fileURLToPath(import.meta.url)}; ` +
    `regenerate it with \`node scripts/make-data-slice.mjs\`. ${FASHION_MNIST_HINT}`);
}

/** Resolves `dir` ("slice", a path, or undefined for the Debian location) and checks it exists. */
export function resolveFashionMnistDir(dir?: string): string {
  if (dir === "slice") return fashionMnistSliceDir();
  const path = resolve(dir ?? DEFAULT_FASHION_MNIST_DIR);
  if (!existsSync(path)) throw new DatasetFileError(`Fashion-MNIST directory ${path} does not exist. ${FASHION_MNIST_HINT}`);
  if (!statSync(path).isDirectory()) throw new DatasetFileError(`Fashion-MNIST path ${path} is not a directory. ${FASHION_MNIST_HINT}`);
  return path;
}

/** Accepts `name.gz` or, if only that exists, the uncompressed `name` (readIdx detects gzip by content). */
function pickFile(dir: string, gzName: string): string {
  const gz = join(dir, gzName);
  const raw = gz.replace(/\.gz$/, "");
  if (!existsSync(gz) && existsSync(raw)) return raw;
  return gz;
}

function checkDims(file: string, arr: IdxArray, expected: string, ok: boolean): void {
  if (!ok) {
    throw new DatasetFileError(
      `dataset file ${file}: expected dims ${expected}, found [${arr.dims.join(", ")}]. ${FASHION_MNIST_HINT}`);
  }
}

export function loadFashionMnist(opts: FashionMnistOptions): FashionMnist {
  const { split, limit, normalize = "standard" } = opts;
  if (split !== "train" && split !== "test") throw new Error(`Fashion-MNIST split must be "train" or "test", got ${JSON.stringify(split)}`);
  if (normalize !== "standard" && normalize !== "unit") throw new Error(`normalize must be "standard" or "unit", got ${JSON.stringify(normalize)}`);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new Error(`limit must be a positive integer, got ${limit}`);
  const dir = resolveFashionMnistDir(opts.dir);
  const imagesFile = pickFile(dir, FASHION_MNIST_FILES[split].images);
  const labelsFile = pickFile(dir, FASHION_MNIST_FILES[split].labels);
  const labels = readIdx(labelsFile);
  checkDims(labelsFile, labels, "[N]", labels.dims.length === 1);
  const images = opts.images === false ? null : readIdx(imagesFile);
  if (images) {
    checkDims(imagesFile, images, "[N, 28, 28]", images.dims.length === 3 && images.dims[1] === 28 && images.dims[2] === 28);
    if (images.dims[0] !== labels.dims[0]) {
      throw new DatasetFileError(`${imagesFile} holds ${images.dims[0]} images but ${labelsFile} holds ${labels.dims[0]} labels. ${FASHION_MNIST_HINT}`);
    }
  }
  const n = Math.min(labels.dims[0], limit ?? Infinity);
  const pixels = images ? 28 * 28 : 0;
  const out = new Float32Array(n * pixels);
  const [scale, shift] = normalize === "standard"
    ? [1 / (255 * FASHION_MNIST_STD), FASHION_MNIST_MEAN / FASHION_MNIST_STD]
    : [1 / 255, 0];
  if (images) for (let i = 0; i < n * pixels; i++) out[i] = images.data[i] * scale - shift;
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = labels.data[i];
    if (label > 9) throw new DatasetFileError(`dataset file ${labelsFile}: label ${label} at index ${i} is outside 0..9. ${FASHION_MNIST_HINT}`);
    y[i] = label;
  }
  return { images: out, inputs: out, labels: y, n, sampleShape: images ? [1, 28, 28] : [0], dir };
}
