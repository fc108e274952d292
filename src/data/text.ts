// A byte-level text corpus for the character-level GPT: tokens are the file's UTF-8 bytes (vocab 256),
// split into train (first part) and validation (last part), sampled as random context windows.
// Window batch `step` is drawn from an Rng seeded by (seed, step), so resuming at any step reproduces
// the same batches without saving RNG state.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Rng } from "../tensor/random.js";
import { Tensor } from "../tensor/tensor.js";
import { epochSeed } from "./loader.js";

export const BYTE_VOCAB_SIZE = 256;

export interface TextCorpus {
  path: string;
  /** All tokens (bytes) of the file. */
  tokens: Uint8Array;
  train: Uint8Array;
  val: Uint8Array;
  vocabSize: number;
}

export interface TextCorpusOptions {
  /** Fraction of the bytes (taken from the end) held out for validation; default 0.1. */
  valFraction?: number;
}

export function encodeText(text: string): Uint8Array { return new TextEncoder().encode(text); }

/** Decodes bytes as UTF-8; sampled output may cut a multi-byte character, which becomes U+FFFD. */
export function decodeBytes(bytes: ArrayLike<number>): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(Uint8Array.from(bytes));
}

export function textCorpusFromBytes(tokens: Uint8Array, path = "<bytes>", opts: TextCorpusOptions = {}): TextCorpus {
  const { valFraction = 0.1 } = opts;
  if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`valFraction must be in [0, 1), got ${valFraction}`);
  const cut = tokens.length - Math.floor(tokens.length * valFraction);
  return { path, tokens, train: tokens.subarray(0, cut), val: tokens.subarray(cut), vocabSize: BYTE_VOCAB_SIZE };
}

export function loadTextCorpus(path: string, opts: TextCorpusOptions = {}): TextCorpus {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`text corpus ${path}: ${code === "ENOENT" ? "file not found" : (e as Error).message}. ` +
      `Pass a UTF-8 text file, or use the committed one (textCorpusPath(), fixtures/text/corpus.txt).`);
  }
  if (bytes.length === 0) throw new Error(`text corpus ${path} is empty`);
  return textCorpusFromBytes(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path, opts);
}

/** The committed corpus fixtures/text/corpus.txt, found by walking up from this module. */
export function textCorpusPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "fixtures", "text", "corpus.txt");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error(`fixtures/text/corpus.txt was not found above ${fileURLToPath(import.meta.url)}`);
}

export interface TextBatch {
  /** [B, T] token ids as floats (token ids travel as Float32 tensors). */
  x: Tensor;
  /** [B*T] next-byte targets, row-major: y[b*T + t] = token after x[b, t]. */
  y: Int32Array;
  /** Start offset of each window in the token array. */
  starts: Int32Array;
}

/** B windows of T tokens at random starts drawn from rng; targets are the same windows shifted by one. */
export function sampleWindows(tokens: Uint8Array, batch: number, context: number, rng: Rng): TextBatch {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
  if (!Number.isInteger(context) || context < 1) throw new Error(`context must be a positive integer, got ${context}`);
  const maxStart = tokens.length - context - 1;
  if (maxStart < 0) throw new Error(`text of ${tokens.length} bytes is too short for context ${context} (needs at least ${context + 1})`);
  const x = new Float32Array(batch * context);
  const y = new Int32Array(batch * context);
  const starts = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    const s = rng.int(maxStart + 1);
    starts[b] = s;
    for (let t = 0; t < context; t++) {
      x[b * context + t] = tokens[s + t];
      y[b * context + t] = tokens[s + t + 1];
    }
  }
  return { x: new Tensor(x, [batch, context]), y, starts };
}

/** Deterministic window batches: batch `step` of a split depends only on (seed, split, step). */
export class TextBatcher {
  constructor(readonly corpus: TextCorpus, readonly batch: number, readonly context: number, readonly seed = 0) {
    if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
    for (const split of ["train", "val"] as const) {
      if (corpus[split].length < context + 1) {
        throw new Error(`text corpus ${corpus.path}: the ${split} split has ${corpus[split].length} bytes, too short for context ${context} (needs at least ${context + 1})`);
      }
    }
  }

  batchAt(split: "train" | "val", step: number): TextBatch {
    if (!Number.isInteger(step) || step < 0) throw new Error(`step must be a non-negative integer, got ${step}`);
    // Validation batches use a different seed stream than training ones.
    const seed = epochSeed(split === "train" ? this.seed : this.seed ^ 0x5f3759df, step);
    return sampleWindows(this.corpus[split], this.batch, this.context, new Rng(seed));
  }
}
