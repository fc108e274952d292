// The compute thread's handle on its GPU thread: compiles each WGSL source once, packs uniform blocks,
// splits 1-D launches over the adapter's per-dimension workgroup limit, and runs one command buffer.
import { GpuChannel } from "./channel.js";
import type { BufferSpec, GpuInit, PassSpec } from "./protocol.js";

export interface GpuOptions {
  /** Invocations per workgroup (default: the device's limit, capped at 256; 128 on llvmpipe). */
  invocations?: number;
}

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
      this.channel.close();
      throw new Error(`webgpu: invocations ${String(opts.invocations)} must be a power of two from 64 to this adapter's limit ${limit}`);
    }
    this.wg = wg;
    this.tile = wg >= 256 ? 16 : 8;
    this.adapter = ready.adapter;
    this.maxGroups = ready.maxGroupsPerDim;
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

  run(buffers: BufferSpec[], passes: PassSpec[], read: readonly number[], what: string): ArrayBuffer[] {
    const shaders = this.pending;
    this.pending = [];
    try {
      return this.channel.call({ shaders, buffers, passes, read }, what);
    } catch (e) {
      // The shaders may not have compiled; send them again with the next request.
      for (const s of shaders) this.shaderIds.delete(s.code);
      throw e;
    }
  }

  close(): void {
    this.channel.close();
  }
}

/** A uniform block: n, then the u32 fields, then the f32 fields (bit patterns through a Float32Array view). */
export function params(n: number, u: readonly number[], f: readonly number[]): Uint32Array {
  const words = new Uint32Array(1 + u.length + f.length);
  words[0] = n;
  words.set(u, 1);
  new Float32Array(words.buffer).set(f, 1 + u.length);
  return words;
}

/** A buffer created from `data`, or (no data) a zeroed one of `words` words. */
export function buf(data: Float32Array | Int32Array | Uint32Array): BufferSpec {
  return { words: data.length, data };
}

export function out(words: number): BufferSpec {
  return { words };
}
