// IDX files (the MNIST family's format): 2 zero bytes, a dtype byte, a rank byte, the dimensions as
// big-endian uint32, then the row-major data. Read gzipped or raw; every length is checked so that a
// truncated or corrupt file is reported as such, never read as garbage.
import { readFileSync, writeFileSync } from "node:fs";
import { gunzipSync, gzipSync } from "node:zlib";

/** How to get Fashion-MNIST; appended to every dataset-file error unless the caller gives its own hint. */
export const FASHION_MNIST_HINT =
  "To get Fashion-MNIST: `apt-get install dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist), " +
  "or pass `--data DIR` pointing at a directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, " +
  "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.";

const UBYTE = 0x08;
/** Other IDX dtype codes, only to name them when rejecting a file. */
const DTYPE_NAMES: Record<number, string> = {
  0x08: "ubyte", 0x09: "byte", 0x0b: "short", 0x0c: "int", 0x0d: "float", 0x0e: "double",
};

export interface IdxArray {
  dtype: "ubyte";
  dims: number[];
  data: Uint8Array;
}

export class DatasetFileError extends Error {}

function fail(file: string, problem: string, hint: string): never {
  throw new DatasetFileError(`dataset file ${file}: ${problem}. ${hint}`);
}

/** Gunzips when the buffer starts with the gzip magic, otherwise returns it unchanged. */
function maybeGunzip(buf: Uint8Array, file: string, hint: string): Uint8Array {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      return gunzipSync(buf);
    } catch (e) {
      fail(file, `gzip stream is corrupt or truncated (${(e as Error).message}; file has ${buf.length} bytes)`, hint);
    }
  }
  return buf;
}

/** Parses an in-memory IDX buffer (gzipped or raw). `file` names it in errors. */
export function parseIdx(input: Uint8Array, file = "<buffer>", hint = FASHION_MNIST_HINT): IdxArray {
  const buf = maybeGunzip(input, file, hint);
  if (buf.length < 4) fail(file, `truncated: expected at least a 4-byte IDX header, found ${buf.length} bytes`, hint);
  if (buf[0] !== 0 || buf[1] !== 0) {
    const found = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    fail(file, `not an IDX file: expected magic 00 00 <dtype> <rank>, found ${found}`, hint);
  }
  const dtype = buf[2];
  if (dtype !== UBYTE) {
    const name = DTYPE_NAMES[dtype] ?? "unknown";
    fail(file, `IDX dtype 0x${dtype.toString(16).padStart(2, "0")} (${name}) is not supported; only 0x08 (ubyte) is`, hint);
  }
  const rank = buf[3];
  if (rank < 1) fail(file, `IDX rank is 0; expected at least 1 dimension`, hint);
  const headerBytes = 4 + 4 * rank;
  if (buf.length < headerBytes) {
    fail(file, `truncated: expected ${headerBytes} header bytes for rank ${rank}, found ${buf.length} bytes`, hint);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const expected = headerBytes + count;
  if (buf.length < expected) {
    fail(file, `truncated: expected ${expected} bytes for dims [${dims.join(", ")}], found ${buf.length}`, hint);
  }
  if (buf.length > expected) {
    fail(file, `expected exactly ${expected} bytes for dims [${dims.join(", ")}], found ${buf.length} (trailing data)`, hint);
  }
  // Copy so the result does not pin the (possibly much larger) decompression buffer.
  return { dtype: "ubyte", dims, data: new Uint8Array(buf.subarray(headerBytes)) };
}

/** Reads an IDX file from disk; a missing file gets the same kind of error as a corrupt one. */
export function readIdx(file: string, hint = FASHION_MNIST_HINT): IdxArray {
  let raw: Uint8Array;
  try {
    raw = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(file, code === "ENOENT" ? "file not found" : `cannot be read (${(e as Error).message})`, hint);
  }
  return parseIdx(raw, file, hint);
}

/** Encodes a ubyte IDX buffer (gzipped when `gzip`), the inverse of parseIdx. */
export function encodeIdx(dims: readonly number[], data: Uint8Array, gzip = true): Uint8Array {
  if (dims.length < 1 || dims.length > 255) throw new Error(`IDX rank must be 1..255, got ${dims.length}`);
  let count = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) throw new Error(`IDX dimension ${d} is not a uint32`);
    count *= d;
  }
  if (data.length !== count) throw new Error(`IDX data has ${data.length} bytes but dims [${dims.join(", ")}] need ${count}`);
  const out = new Uint8Array(4 + 4 * dims.length + count);
  const view = new DataView(out.buffer);
  out[2] = UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return gzip ? gzipSync(out, { level: 9 }) : out;
}

export function writeIdx(file: string, dims: readonly number[], data: Uint8Array, gzip = file.endsWith(".gz")): void {
  writeFileSync(file, encodeIdx(dims, data, gzip));
}
