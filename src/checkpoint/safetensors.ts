// The safetensors format (https://github.com/huggingface/safetensors), F32 only:
//   8 bytes   little-endian u64 N = header length
//   N bytes   UTF-8 JSON {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
//             padded with spaces to a multiple of 8 bytes, as the reference writer does
//   rest      tensor bytes; offsets are relative to the end of the header, contiguous from 0, no gaps
// Reading validates every length and offset, so a truncated or corrupt file is reported, never read
// as garbage. Tensors are written in the given order (a Map's insertion order).
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { endianness } from "node:os";
import { Tensor } from "../tensor/tensor.js";
import { fmt, numel } from "../tensor/shape.js";
import { describeValue } from "../util/describe.js";
import { writeFileAtomic } from "./atomic-write.js";

export type SafetensorsMetadata = Record<string, string>;
export type NamedTensors = ReadonlyMap<string, Tensor> | readonly (readonly [string, Tensor])[];

export interface SafetensorsContents {
  /** Tensors in file order (ascending data offset). */
  tensors: Map<string, Tensor>;
  metadata: SafetensorsMetadata;
}

export class SafetensorsError extends Error {}

const KNOWN_DTYPES = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"];
/** The reference reader's cap, so a garbage length cannot make us allocate gigabytes of header. */
const MAX_HEADER_BYTES = 100_000_000;

function checkHostEndianness(): void {
  // Tensor bytes are copied as-is; Float32Array uses host order, safetensors is little-endian.
  if (endianness() !== "LE") throw new SafetensorsError("safetensors I/O needs a little-endian host");
}

function entriesOf(tensors: NamedTensors): (readonly [string, Tensor])[] {
  return tensors instanceof Map ? [...tensors.entries()] : [...(tensors as readonly (readonly [string, Tensor])[])];
}

/** The file as chunks (8-byte length, padded header, each tensor's bytes without copying). */
export function encodeSafetensors(tensors: NamedTensors, metadata?: SafetensorsMetadata): Uint8Array[] {
  checkHostEndianness();
  const entries = entriesOf(tensors);
  const seen = new Set<string>();
  // Built by hand so the header lists tensors in the given order (JS objects would hoist "0", "1", ...).
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new SafetensorsError(`metadata value for "${k}" must be a string, got ${describeValue(v)}`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === "" || name === "__metadata__") throw new SafetensorsError(`invalid tensor name ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new SafetensorsError(`tensor name "${name}" appears twice`);
    seen.add(name);
    const bytes = t.data.length * 4;
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] })}`);
    offset += bytes;
  }
  let header = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const pad = (8 - (header.length % 8)) % 8;
  if (pad > 0) header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  return [prefix, header, ...entries.map(([, t]) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}

export function serializeSafetensors(tensors: NamedTensors, metadata?: SafetensorsMetadata): Buffer {
  return Buffer.concat(encodeSafetensors(tensors, metadata));
}

interface Entry { name: string; shape: number[]; begin: number; end: number; }

function isNonNegInt(v: unknown): v is number { return typeof v === "number" && Number.isSafeInteger(v) && v >= 0; }

/** The validated header of a buffer holding at least the length word and the header. */
function parseHeader(buf: Uint8Array, file: string): { metadata: SafetensorsMetadata; entries: Entry[]; dataStart: number } {
  const bad = (problem: string): never => { throw new SafetensorsError(`safetensors file ${file}: ${problem}`); };
  if (buf.length < 8) bad(`truncated: expected at least 8 bytes (the header length), found ${buf.length}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(buf.length - 8)) {
    bad(`truncated: header length ${headerLen64} needs at least ${8n + headerLen64} bytes, found ${buf.length}`);
  }
  const headerLen = Number(headerLen64);
  if (headerLen > MAX_HEADER_BYTES) bad(`header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(8, 8 + headerLen));
  } catch {
    return bad("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) bad(`header must be a JSON object starting with "{", found ${JSON.stringify(text.slice(0, 20))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    return bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) bad("header must be a JSON object");

  const metadata: SafetensorsMetadata = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (info === null) continue;
      if (typeof info !== "object" || Array.isArray(info)) bad(`__metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== "string") bad(`__metadata__ value for "${k}" must be a string, found ${JSON.stringify(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof info !== "object" || info === null) bad(`entry "${name}" must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (dtype !== "F32") {
      const known = typeof dtype === "string" && KNOWN_DTYPES.includes(dtype);
      bad(`tensor "${name}" has dtype ${JSON.stringify(dtype)}; pipewright reads only F32` +
        (known ? " (convert the checkpoint to float32 first)" : ` (valid safetensors dtypes: ${KNOWN_DTYPES.join(", ")})`));
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) bad(`tensor "${name}" has invalid shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegInt) || offsets[0] > offsets[1]) {
      bad(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}; expected [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as number[];
    const expectBytes = numel(shape as number[]) * 4;
    if (end - begin !== expectBytes) {
      bad(`tensor "${name}" of shape ${fmt(shape as number[])} needs ${expectBytes} bytes (F32) but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    entries.push({ name, shape: shape as number[], begin, end });
  }
  return { metadata, entries, dataStart: 8 + headerLen };
}

/**
 * Parses a whole safetensors file held in memory; `file` names it in errors. With `want`, only the tensors it accepts are copied out (the file is
 * still checked whole).
 */
export function parseSafetensors(buf: Uint8Array, file = "<buffer>", want?: (name: string) => boolean): SafetensorsContents {
  checkHostEndianness();
  const bad = (problem: string): never => { throw new SafetensorsError(`safetensors file ${file}: ${problem}`); };
  const { metadata, entries, dataStart } = parseHeader(buf, file);

  // The data must be covered exactly once: sorted by offset, each tensor starts where the last ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const [i, e] of entries.entries()) {
    if (e.begin < pos) bad(`tensor "${e.name}" [${e.begin}, ${e.end}] overlaps tensor "${entries[i - 1].name}" ending at ${pos}`);
    if (e.begin > pos) bad(`gap in the data: tensor "${e.name}" starts at ${e.begin} but the previous data ends at ${pos}`);
    pos = e.end;
  }
  const expected = dataStart + pos;
  if (buf.length < expected) bad(`truncated: expected ${expected} bytes, found ${buf.length}`);
  if (buf.length > expected) bad(`expected exactly ${expected} bytes, found ${buf.length} (trailing data after the last tensor)`);

  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    if (want && !want(e.name)) continue;
    // Copy: the data offset need not be 4-byte aligned in the source buffer, and tensors own their memory.
    const data = new Float32Array((e.end - e.begin) / 4);
    new Uint8Array(data.buffer).set(buf.subarray(dataStart + e.begin, dataStart + e.end));
    tensors.set(e.name, new Tensor(data, e.shape));
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string, want?: (name: string) => boolean): SafetensorsContents {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new SafetensorsError(`safetensors file ${path}: ${readProblem(e)}`);
  }
  return parseSafetensors(buf, path, want);
}

function readProblem(e: unknown): string {
  return (e as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : (e as Error).message;
}

/** The metadata of a file, reading only its header (a checkpoint's settings without its tensors). */
export function readSafetensorsMetadata(path: string): SafetensorsMetadata {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new SafetensorsError(`safetensors file ${path}: ${readProblem(e)}`);
  }
  try {
    const head = Buffer.alloc(8);
    const got = readSync(fd, head, 0, 8, 0);
    const len64 = got === 8 ? head.readBigUInt64LE(0) : 0n;
    if (len64 > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`safetensors file ${path}: header length ${len64} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
    const len = Number(len64);
    const buf = Buffer.alloc(got + len);
    head.copy(buf, 0, 0, got);
    const n = len > 0 ? readSync(fd, buf, 8, len, 8) : 0;
    return parseHeader(buf.subarray(0, got + n), path).metadata;
  } finally {
    closeSync(fd);
  }
}

/** Writes atomically (temp file + fsync + rename). */
export function writeSafetensors(path: string, tensors: NamedTensors, metadata?: SafetensorsMetadata): void {
  const chunks = encodeSafetensors(tensors, metadata);
  writeFileAtomic(path, chunks);
}
