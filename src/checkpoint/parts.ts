// A checkpoint in parts (one file per rank of a processes run) and the manifest that makes it count.
//   part      "<base>.part-<step>-<hex>-r<rank>.safetensors" beside the checkpoint <base>: a safetensors
//             file of one rank's tensors under the names a single-file checkpoint uses (state-dict
//             names, "optim.*", "extra.*"); metadata {format: "pipewright-part", rank}. Each save picks
//             new names, so no part of the previous checkpoint is ever overwritten.
//   manifest  the checkpoint path itself, written last (atomically) once every part is on disk: a
//             safetensors file without tensors whose metadata are a single file's (step, epoch,
//             model_spec, optimizer, extra; checkpoint.ts) plus
//               format "pipewright-manifest", format_version "1"
//               parts  [{file, bytes, sha256, tensors: [names]}] (file: a name in the manifest's directory)
//               order  the model tensors in state-dict order (the parts hold them by rank)
// Until the new manifest is renamed into place the path holds the previous checkpoint (a manifest
// whose parts are untouched, or a single file), so a crash in the middle of a save leaves it
// complete. Parts that no manifest names (an older save's, a crashed save's) are removed after the
// manifest is written. Every part must be readable from the manifest's directory: on several hosts,
// a shared file system.
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { Tensor } from "../tensor/tensor.js";
import { writeFileAtomic } from "./atomic-write.js";
import { CheckpointError } from "./errors.js";
import { encodeSafetensors, parseSafetensors, type NamedTensors, type SafetensorsMetadata } from "./safetensors.js";

export const PART_FORMAT = "pipewright-part";
export const MANIFEST_FORMAT = "pipewright-manifest";
export const MANIFEST_FORMAT_VERSION = "1";

/** One part as the manifest lists it. */
export interface PartInfo {
  /** File name in the manifest's directory. */
  file: string;
  bytes: number;
  /** SHA-256 of the whole file, hex. */
  sha256: string;
  /** Its tensors' names, in file order. */
  tensors: string[];
}

/** Test hook: called while a part is half written (a crash there leaves only a temp file). */
export interface PartWriteHooks { midWrite?(): void }

/** A new part name for checkpoint `path` (random per call: a save never reuses a name). */
export function newPartName(path: string, step: number, rank: number): string {
  return `${basename(path)}.part-${step}-${randomBytes(4).toString("hex")}-r${rank}.safetensors`;
}

/** Writes part `file` beside checkpoint `path` atomically (temp + fsync + rename), hashing it on the way. */
export function writePart(path: string, file: string, tensors: NamedTensors, rank: number, hooks: PartWriteHooks = {}): PartInfo {
  checkPartName(path, file);
  const names = (tensors instanceof Map ? [...tensors.keys()] : (tensors as readonly (readonly [string, Tensor])[]).map(([n]) => n));
  const chunks = encodeSafetensors(tensors, { format: PART_FORMAT, rank: String(rank) });
  const hash = createHash("sha256");
  let bytes = 0;
  writeFileAtomic(join(dirname(resolve(path)), file), (write) => {
    chunks.forEach((c, i) => {
      if (i === Math.floor(chunks.length / 2)) hooks.midWrite?.();
      hash.update(c);
      write(c);
      bytes += c.byteLength;
    });
  });
  return { file, bytes, sha256: hash.digest("hex"), tensors: names };
}

export function checkPartName(path: string, file: string): void {
  // A manifest may only name files of its own checkpoint in its own directory (never "../x").
  if (file !== basename(file) || !file.startsWith(`${basename(path)}.part-`)) {
    throw new CheckpointError(`checkpoint ${path}: part name ${JSON.stringify(file)} must be a file "${basename(path)}.part-*" in the checkpoint's directory`);
  }
}

/** The manifest's own metadata fields next to the checkpoint's (checkpoint.ts adds step, epoch, ...). */
export function manifestFields(parts: readonly PartInfo[], order: readonly string[]): SafetensorsMetadata {
  return { format: MANIFEST_FORMAT, format_version: MANIFEST_FORMAT_VERSION, parts: JSON.stringify(parts), order: JSON.stringify(order) };
}

function parsePartList(path: string, meta: SafetensorsMetadata): PartInfo[] {
  const bad = (what: string): never => { throw new CheckpointError(`checkpoint ${path}: manifest ${what}`); };
  let raw: unknown;
  try { raw = JSON.parse(meta.parts ?? "null"); } catch { bad(`metadata "parts" is not valid JSON`); }
  if (!Array.isArray(raw) || raw.length === 0) bad(`metadata "parts" must be a non-empty list, found ${JSON.stringify(meta.parts)}`);
  return (raw as unknown[]).map((p, i) => {
    const o = p as Partial<PartInfo>;
    const ok = typeof o === "object" && o !== null && typeof o.file === "string" && Number.isSafeInteger(o.bytes) && o.bytes! >= 0 &&
      typeof o.sha256 === "string" && /^[0-9a-f]{64}$/.test(o.sha256) && Array.isArray(o.tensors) && o.tensors.every((n) => typeof n === "string");
    if (!ok) bad(`part ${i + 1} must be {file, bytes, sha256, tensors}, found ${JSON.stringify(p)}`);
    checkPartName(path, o.file!);
    return o as PartInfo;
  });
}

/** A part that is not read must still exist with the manifest's size. */
function checkPartSize(path: string, part: PartInfo, i: number, n: number): void {
  let bytes: number;
  try {
    bytes = statSync(join(dirname(resolve(path)), part.file)).size;
  } catch (e) {
    throw partUnreadable(path, part, i, n, e);
  }
  if (bytes !== part.bytes) throw new CheckpointError(`checkpoint ${path}: part ${part.file} has ${bytes} bytes, the manifest says ${part.bytes} (changed or truncated)`);
}

function partUnreadable(path: string, part: PartInfo, i: number, n: number, e: unknown): CheckpointError {
  const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
  return new CheckpointError(`checkpoint ${path} is incomplete: part ${part.file} (${i + 1} of ${n}) ${missing ? "is missing" : `cannot be read (${(e as Error).message})`}; ` +
    `every part the manifest names must sit beside it (copy or move the checkpoint with all its ${basename(path)}.part-* files)`);
}

/** The bytes of one listed part, checked against the manifest (size and checksum). */
function readPart(path: string, part: PartInfo, i: number, n: number): Buffer {
  const full = join(dirname(resolve(path)), part.file);
  let buf: Buffer;
  try {
    buf = readFileSync(full);
  } catch (e) {
    throw partUnreadable(path, part, i, n, e);
  }
  if (buf.length !== part.bytes) throw new CheckpointError(`checkpoint ${path}: part ${part.file} has ${buf.length} bytes, the manifest says ${part.bytes} (changed or truncated)`);
  const sum = createHash("sha256").update(buf).digest("hex");
  if (sum !== part.sha256) throw new CheckpointError(`checkpoint ${path}: part ${part.file} does not match the manifest's SHA-256 (changed or corrupt)`);
  return buf;
}

/**
 * Every tensor of a manifest's parts, merged: model tensors in the manifest's state-dict order, then
 * the rest (optimizer, trainer) in part order. A missing, changed or foreign part is an error naming it.
 * With `want`, only the tensors it accepts: a part holding none of them is only checked to exist
 * with its size, not read.
 */
export function readManifestTensors(path: string, meta: SafetensorsMetadata, ownTensors: number, want?: (name: string) => boolean): Map<string, Tensor> {
  if (meta.format_version !== MANIFEST_FORMAT_VERSION) {
    throw new CheckpointError(`checkpoint ${path}: manifest format_version ${JSON.stringify(meta.format_version)} is not supported (this build reads "${MANIFEST_FORMAT_VERSION}")`);
  }
  if (ownTensors > 0) throw new CheckpointError(`checkpoint ${path}: a manifest holds no tensors, found ${ownTensors}`);
  const parts = parsePartList(path, meta);
  const all = new Map<string, Tensor>();
  parts.forEach((part, i) => {
    if (want && !part.tensors.some(want)) { checkPartSize(path, part, i, parts.length); return; }
    const { tensors: read, metadata } = parseSafetensors(readPart(path, part, i, parts.length), part.file);
    if (metadata.format !== PART_FORMAT) throw new CheckpointError(`checkpoint ${path}: ${part.file} is not a pipewright part (format ${JSON.stringify(metadata.format)})`);
    const names = [...read.keys()];
    if (names.length !== part.tensors.length || part.tensors.some((n) => !read.has(n))) {
      throw new CheckpointError(`checkpoint ${path}: part ${part.file} holds other tensors than the manifest lists`);
    }
    for (const [k, t] of read) {
      if (want && !want(k)) continue;
      if (all.has(k)) throw new CheckpointError(`checkpoint ${path}: tensor "${k}" appears in two parts (the second: ${part.file})`);
      all.set(k, t);
    }
  });
  let order: unknown;
  try { order = JSON.parse(meta.order ?? "[]"); } catch { order = null; }
  const listed = new Set(parts.flatMap((p) => p.tensors));
  if (!Array.isArray(order) || !order.every((n) => typeof n === "string" && listed.has(n))) {
    throw new CheckpointError(`checkpoint ${path}: manifest "order" must list tensors of its parts, found ${JSON.stringify(meta.order)}`);
  }
  const out = new Map<string, Tensor>();
  for (const n of order as string[]) if (all.has(n)) out.set(n, all.get(n)!);
  for (const [k, t] of all) if (!out.has(k)) out.set(k, t);
  return out;
}

/**
 * Removes the part files (and part temp files) of checkpoint `path` that are not in `keep`: those
 * of older saves and of saves that crashed. Call only once the manifest naming `keep` is in place
 * and no rank is writing. Returns the removed names.
 */
export function removeStaleParts(path: string, keep: ReadonlySet<string>): string[] {
  const dir = dirname(resolve(path)), base = basename(path);
  const mine = (f: string): boolean => f.startsWith(`${base}.part-`) || f.startsWith(`.${base}.part-`);
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const removed: string[] = [];
  for (const f of names.filter((n) => mine(n) && !keep.has(n))) {
    try { unlinkSync(join(dir, f)); removed.push(f); } catch { /* already gone */ }
  }
  return removed;
}
