// Atomic file replacement: write a temp file in the same directory, fsync it, rename it over the
// target, fsync the directory. A crash or a throwing writer leaves either the old file or the new
// one, never a half-written file, and the temp file is removed on failure.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { randomBytes } from "node:crypto";

/** Content: text (UTF-8), bytes, a list of chunks, or a producer that calls `write` for each chunk. */
export type AtomicContent = string | Uint8Array | readonly Uint8Array[] | ((write: (chunk: Uint8Array) => void) => void);

function writeAll(fd: number, chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.byteLength) off += writeSync(fd, chunk, off, chunk.byteLength - off);
}

export function writeFileAtomic(path: string, content: AtomicContent): void {
  const target = resolve(path);
  const dir = dirname(target);
  const tmp = join(dir, `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx", 0o644);
  } catch (e) {
    throw new Error(`cannot write ${target}: creating a temp file in ${dir} failed (${(e as Error).message})`);
  }
  try {
    if (typeof content === "function") content((chunk) => writeAll(fd, chunk));
    else if (typeof content === "string") writeAll(fd, Buffer.from(content, "utf8"));
    else if (content instanceof Uint8Array) writeAll(fd, content);
    else for (const chunk of content) writeAll(fd, chunk);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, target);
  } catch (e) {
    if (fd >= 0) { try { closeSync(fd); } catch { /* already failing */ } }
    try { unlinkSync(tmp); } catch { /* may already be gone */ }
    throw new Error(`writing ${target} failed, previous contents left untouched: ${(e as Error).message}`, { cause: e });
  }
  // Persist the rename itself; not every platform lets a directory be opened, so best-effort.
  try {
    const dfd = openSync(dir, "r");
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* best-effort */ }
}
