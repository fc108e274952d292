// Keyed control messages over MPI (tag ctrl): any structured-cloneable value (typed arrays, Maps,
// plain objects), serialised with node:v8 (device-resident arrays as their host memory). A value is
// taken by (source, key); one that arrives before anyone asks for it waits in the mailbox.
// Collectives name their messages with a sequence number every rank counts the same way (all ranks
// call the same collectives in the same order).
import { deserialize, serialize } from "node:v8";
import { hostMemory, mayHoldDeviceArrays } from "../../tensor/host-arrays.js";
import { TAG, type MpiTransport } from "./transport.js";
import { frameHeader, parseFrame } from "./frame.js";

type Waiter = (v: unknown) => void;

/**
 * `v` with every Float32Array replaced by its host memory, up to date: a device-resident (webgpu)
 * array is a Proxy, which the serialiser refuses. Arrays, Maps, Sets and objects are copied (as the
 * serialiser would see them: own enumerable properties); shared and cyclic references stay shared.
 */
function withHostMemory(v: unknown, seen = new Map<object, unknown>()): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (v instanceof Float32Array) return hostMemory(v);
  if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer || v instanceof Date || v instanceof RegExp || v instanceof Error) return v;
  const done = seen.get(v);
  if (done !== undefined) return done;
  const walk = (x: unknown): unknown => withHostMemory(x, seen);
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    seen.set(v, out);
    for (const x of v) out.push(walk(x));
    return out;
  }
  if (v instanceof Map) {
    const out = new Map<unknown, unknown>();
    seen.set(v, out);
    for (const [k, x] of v) out.set(walk(k), walk(x));
    return out;
  }
  if (v instanceof Set) {
    const out = new Set<unknown>();
    seen.set(v, out);
    for (const x of v) out.add(walk(x));
    return out;
  }
  const out: Record<string, unknown> = {};
  seen.set(v, out);
  for (const [k, x] of Object.entries(v)) out[k] = walk(x);
  return out;
}

export class ControlMailbox {
  private readonly got = new Map<string, unknown>();
  private readonly waiting = new Map<string, Waiter>();
  private seq = 0;

  constructor(readonly mpi: MpiTransport, readonly comm: number) {
    mpi.listen(comm, TAG.ctrl, (source, data) => {
      const { key, value } = deserialize(new Uint8Array(data)) as { key: string; value: unknown };
      this.arrived(source, key, value);
    });
    // Float32Arrays (all-reduce parts) travel as raw bytes and are viewed in place: no serialiser.
    mpi.listen(comm, TAG.floats, (source, data) => {
      const { header, body, offset, bytes } = parseFrame(data);
      this.arrived(source, header.key, new Float32Array(body, offset, bytes / 4));
    });
  }

  private arrived(source: number, key: string, value: unknown): void {
    const k = `${source}/${key}`;
    const w = this.waiting.get(k);
    if (w) { this.waiting.delete(k); w(value); } else this.got.set(k, value);
  }

  /** A fresh name for the next collective (the same on every rank). */
  nextKey(what: string): string { return `${what}#${this.seq++}`; }

  post(dest: number, key: string, value: unknown): void {
    if (value instanceof Float32Array) {
      this.mpi.send(this.comm, dest, TAG.floats, frameHeader({ key, kind: "tensor", shape: [value.length] }), value);
      return;
    }
    // While every array is plain, the value goes as it is (no copy of its structure).
    this.mpi.send(this.comm, dest, TAG.ctrl, serialize({ key, value: mayHoldDeviceArrays() ? withHostMemory(value) : value }));
  }

  /** The value from `source` under `key` if it has arrived (then taken), else null. */
  takeNow(source: number, key: string): { value: unknown } | null {
    const k = `${source}/${key}`;
    if (!this.got.has(k)) return null;
    const value = this.got.get(k);
    this.got.delete(k);
    return { value };
  }

  take<T>(source: number, key: string): Promise<T> {
    const k = `${source}/${key}`;
    if (this.got.has(k)) {
      const v = this.got.get(k);
      this.got.delete(k);
      return Promise.resolve(v as T);
    }
    return new Promise((resolve) => { this.waiting.set(k, resolve as Waiter); });
  }
}
