// The compute thread's handle on its GPU thread: compiles each WGSL source once, packs uniform blocks,
// splits 1-D launches over the adapter's per-dimension workgroup limit, and runs one command buffer.
import { GpuChannel } from "./channel.js";
import type { CreateSpec, GpuInit, GpuRequest, HostData, PassSpec } from "./protocol.js";
import { ResidentArrays, type Slot } from "./resident.js";
import { UploadCache } from "./upload-cache.js";
import { hostMemory } from "../../tensor/host-arrays.js";

export interface GpuOptions {
  /** Invocations per workgroup (default: the device's limit, capped at 256; 128 on llvmpipe). */
  invocations?: number;
  /**
   * Keep the tensors kernels write on the device until the host reads them (default true). False
   * is the first slice's path, kept as the oracle: every kernel uploads its operands and reads its
   * outputs back.
   */
  resident?: boolean;
  /** Record kernels and submit only when the host reads (default true); false waits after each kernel. */
  batched?: boolean;
  /**
   * The largest im2col matrix (32-bit words) a convolution's forward or data gradient builds to run
   * as a matmul; larger ones run the direct kernels, one invocation per output (default 2^24 words,
   * 64 MiB, half the smallest storage binding a device may have; 0: always the direct kernels).
   */
  im2colWords?: number;
}

/** Counts of host <-> device traffic since the backend opened (tests check they stay O(1) per step). */
export interface GpuCounts {
  /** Tensors (Float32 or Int32 operands) copied to the device. */
  uploads: number;
  /** Buffers read back to the host. */
  readbacks: number;
  /** 32-bit words in the buffers read back. */
  readWords: number;
  /** Times the compute thread waited for the GPU thread. */
  waits: number;
}

/**
 * An operand of a kernel call: its host array, and whether the kernel needs its old contents; or a
 * device-only scratch buffer of at least `words` (an intermediate between passes; kept for the next
 * call's scratch operand at the same place, since a new buffer would be zero-filled for nothing).
 */
export type Operand = { array: Float32Array | Int32Array | Uint32Array; keep: boolean } | { words: number };

export class Gpu {
  readonly wg: number;
  /** The matmul tile edge: 16 (256 invocations) where allowed, else 8. */
  readonly tile: number;
  readonly adapter: string;
  private readonly channel: GpuChannel;
  private readonly maxGroups: number;
  private readonly shaderIds = new Map<string, number>();
  private nextShader = 0;
  private pending: { id: number; code: string }[] = [];
  private nextBuffer = 0;
  private freed: number[] = [];
  private readonly batched: boolean;
  readonly resident: ResidentArrays | null;
  readonly im2colWords: number;
  readonly counts: GpuCounts = { uploads: 0, readbacks: 0, readWords: 0, waits: 0 };
  private readonly cache = new UploadCache((id) => { this.freed.push(id); });
  /** Scratch buffers by their place among a call's scratch operands (see Operand). */
  private readonly scratches: { id: number; words: number }[] = [];
  /** Device arrays to read back with the next request that waits (see readAlong). */
  private along: Slot[] = [];
  private closed = false;

  constructor(init: GpuInit, opts: GpuOptions = {}) {
    this.channel = new GpuChannel(init);
    const ready = this.channel.ready;
    if (!ready.ok) {
      this.channel.close();
      throw new Error(`webgpu backend unavailable: ${ready.error}`);
    }
    const limit = ready.maxInvocations;
    const wg = opts.invocations ?? Math.min(limit, 256);
    if (!Number.isInteger(wg) || wg < 64 || wg > limit || (wg & (wg - 1)) !== 0) {
      try {
        this.channel.call({ shaders: [], create: [], passes: [], free: [], read: [], reply: true, close: true }, "closing");
      } catch {
        // The error below is the one to report.
      }
      throw new Error(`webgpu: invocations ${String(opts.invocations)} must be a power of two from 64 to this adapter's limit ${limit}`);
    }
    this.wg = wg;
    this.tile = wg >= 256 ? 16 : 8;
    this.adapter = ready.adapter;
    this.maxGroups = ready.maxGroupsPerDim;
    this.batched = opts.batched ?? true;
    this.im2colWords = opts.im2colWords ?? 1 << 24;
    this.resident = (opts.resident ?? true) ? new ResidentArrays({
      readBack: (id, into) => land(into, this.read([id], "reading a tensor back")[0]),
      retire: (id) => { this.freed.push(id); },
    }) : null;
  }

  /** The id of a WGSL source, queued for compilation with the next request the first time it is seen. */
  shader(code: string): number {
    let id = this.shaderIds.get(code);
    if (id === undefined) {
      id = this.nextShader++;
      this.shaderIds.set(code, id);
      this.pending.push({ id, code });
    }
    return id;
  }

  /** Workgroups for `items` invocations, one per item, as x * y under the per-dimension limit. */
  groups(items: number): [number, number, number] {
    const total = Math.max(1, Math.ceil(items / this.wg));
    const x = Math.min(total, this.maxGroups);
    return [x, Math.ceil(total / x), 1];
  }

  /** A 1-D pass over `items` with the uniform block (u32 fields first, then f32 fields). */
  pass(code: string, bindings: readonly number[], items: number, u: readonly number[], f: readonly number[] = []): PassSpec {
    return { shader: this.shader(code), bindings, params: params(items, u, f), groups: this.groups(items) };
  }

  /**
   * A pass of a `reduction` kernel (`code(lanes)`) over `outputs` sums of `len` terms: a workgroup per
   * output where a sum is at least a workgroup long, else an invocation per output.
   */
  reducePass(code: (lanes: number) => string, bindings: readonly number[], outputs: number, len: number,
    u: readonly number[], f: readonly number[] = []): PassSpec {
    return len >= this.wg ? this.rowPass(code(this.wg), bindings, outputs, u, f) : this.pass(code(1), bindings, outputs, u, f);
  }

  /** A pass with one workgroup per row (the kernels built with perRow). */
  rowPass(code: string, bindings: readonly number[], rows: number, u: readonly number[], f: readonly number[] = []): PassSpec {
    return { shader: this.shader(code), bindings, params: params(rows, u, f), groups: this.groups(rows * this.wg) };
  }

  /**
   * Runs passes over the operands (pass bindings index into them); `written` lists the operands the
   * passes write. Device-backed arrays (see resident.ts) stay on the device; plain arrays are
   * uploaded and, when written, read back before this returns.
   */
  run(operands: readonly Operand[], passes: PassSpec[], written: readonly number[], what: string): void {
    const create: CreateSpec[] = [];
    const temps: number[] = [];
    const landing: [number, Float32Array | Int32Array | Uint32Array][] = [];
    const ids = new Map<object, number>(); // arrays already given a buffer in this call
    const upload = (a: HostData, copyOf?: number): number => {
      const id = this.nextBuffer++;
      create.push(copyOf === undefined ? { id, words: a.length, data: a } : { id, words: a.length, copyOf });
      if (copyOf === undefined && !(a instanceof Uint32Array)) this.counts.uploads++;
      return id;
    };
    // Written operands first, so that an input aliasing an output reads a copy taken before the passes.
    const order = [...written, ...operands.keys()].filter((i, at, all) => all.indexOf(i) === at);
    const bound = new Array<number>(operands.length);
    let scratches = 0;
    for (const i of order) {
      const op = operands[i];
      if ("words" in op) {
        bound[i] = this.scratch(create, scratches++, op.words);
        continue;
      }
      const a = op.array;
      const isOut = written.includes(i);
      // An output that is also read through another operand must start from its current values.
      const keep = op.keep || operands.some((o, j) => "array" in o && o.array === a && !written.includes(j));
      const slot = this.resident?.slotOf(a);
      const seen = ids.get(a);
      if (seen !== undefined) {
        // The same array again: an input next to an output of it reads a copy of the old values.
        bound[i] = isOut ? seen : upload(a, seen);
        if (!isOut) temps.push(bound[i]);
        continue;
      }
      if (slot) {
        // A new buffer starts zeroed: an array that still holds its first zeros needs no upload.
        if (slot.id === null) slot.id = (isOut && !keep) || slot.zero ? this.fresh(create, a.length) : upload(slot.memory);
        if (isOut) { slot.stale = true; slot.zero = false; }
        bound[i] = slot.id;
      } else {
        if (!isOut && !(a instanceof Uint32Array)) {
          // A plain array (or one of another device's factory): its current host values, uploaded
          // once while they stay the same.
          const host = a instanceof Float32Array ? hostMemory(a) : a;
          let id = this.cache.find(a, host);
          if (id === undefined) this.cache.keep(a, host, id = upload(host));
          bound[i] = id;
        } else {
          // An output, of another device's factory or plain: written back to it before this returns.
          bound[i] = isOut && !keep ? this.fresh(create, a.length) : upload(a instanceof Float32Array ? hostMemory(a) : a);
          temps.push(bound[i]);
          if (isOut) landing.push([bound[i], a]);
        }
      }
      ids.set(a, bound[i]);
    }
    const mapped = passes.map((p) => ({ ...p, bindings: p.bindings.map((b) => bound[b]) }));
    const shaders = this.pending;
    this.pending = [];
    const req: GpuRequest = { shaders, create, passes: mapped, free: this.freed, read: landing.map(([id]) => id),
      reply: !this.batched };
    this.freed = temps;
    try {
      if (req.read.length === 0 && this.batched) {
        if (this.closed) throw new Error(`webgpu ${what}: the backend was closed`);
        this.channel.post(req, what);
        return;
      }
      const results = this.wait(req, what);
      landing.forEach(([, a], k) => land(a, results[k]));
      this.counted(results);
    } catch (e) {
      // The shaders may not have compiled; send them again with the next request.
      for (const s of shaders) this.shaderIds.delete(s.code);
      throw e;
    }
  }

  /** Reads buffers back, submitting everything recorded before. */
  read(ids: number[], what: string): ArrayBuffer[] {
    const req: GpuRequest = { shaders: [], create: [], passes: [], free: this.freed, read: ids, reply: true };
    this.freed = [];
    return this.counted(this.wait(req, what));
  }

  private counted(results: ArrayBuffer[]): ArrayBuffer[] {
    this.counts.readbacks += results.length;
    for (const r of results) this.counts.readWords += r.byteLength / 4;
    return results;
  }

  /**
   * Brings a device array's values back with the next request that waits anyway, instead of a wait
   * of its own when the host reads it (a small result due soon, such as a count beside the loss).
   */
  readAlong(a: Float32Array): void {
    const slot = this.resident?.slotOf(a);
    if (slot?.stale) this.along.push(slot);
  }

  private wait(req: GpuRequest, what: string): ArrayBuffer[] {
    if (this.closed) throw new Error(`webgpu ${what}: the backend was closed`);
    this.counts.waits++;
    // Only arrays still behind on the host and still on the device (a host write may have dropped one).
    const along = this.along.filter((s) => s.stale && s.id !== null && !req.read.includes(s.id));
    this.along = [];
    const results = this.channel.call({ ...req, read: [...req.read, ...along.map((s) => s.id!)] }, what);
    along.forEach((s, k) => {
      land(s.memory, this.counted([results[req.read.length + k]])[0]);
      s.stale = false;
    });
    return results.slice(0, req.read.length);
  }

  /** The `k`-th scratch buffer of a call, grown (a new one) when it is smaller than `words`. */
  private scratch(create: CreateSpec[], k: number, words: number): number {
    const s = this.scratches[k];
    if (s && s.words >= words) return s.id;
    if (s) this.freed.push(s.id);
    this.scratches[k] = { id: this.fresh(create, words), words };
    return this.scratches[k].id;
  }

  private fresh(create: CreateSpec[], words: number): number {
    const id = this.nextBuffer++;
    create.push({ id, words });
    return id;
  }

  close(): void {
    // The GPU thread finishes recorded work, frees every buffer and destroys the device. The thread
    // itself is left parked (it never keeps the process alive): terminating a thread that holds a
    // Dawn instance crashed the process now and then (SIGSEGV, SIGABRT) when several were closed.
    try {
      this.wait({ shaders: [], create: [], passes: [], free: [], read: [], reply: true, close: true }, "closing");
    } catch {
      // A failed device is closed all the same.
    }
    this.closed = true;
  }
}

/** Copies a buffer read back into the array it stands for, as that array's element type. */
function land(into: Float32Array | Int32Array | Uint32Array, b: ArrayBuffer): void {
  into.set(into instanceof Int32Array ? new Int32Array(b) : into instanceof Uint32Array ? new Uint32Array(b) : new Float32Array(b));
}

/** A uniform block: n, then the u32 fields, then the f32 fields (bit patterns through a Float32Array view). */
export function params(n: number, u: readonly number[], f: readonly number[]): Uint32Array {
  const words = new Uint32Array(1 + u.length + f.length);
  words[0] = n;
  words.set(u, 1);
  new Float32Array(words.buffer).set(f, 1 + u.length);
  return words;
}

/** An operand whose contents the kernel reads (inputs, and outputs it adds into or updates in place). */
export function buf(array: Float32Array | Int32Array | Uint32Array): Operand {
  return { array, keep: true };
}

/** A scratch buffer on the device, never seen by the host. */
export function scratch(words: number): Operand {
  return { words };
}

/** An output the kernel overwrites entirely. */
export function out(array: Float32Array | Int32Array): Operand {
  return { array, keep: false };
}
