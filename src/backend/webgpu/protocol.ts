// The messages between a compute thread and its GPU thread (device-thread.ts). Buffers live on the
// GPU thread under ids the compute thread chooses. A request creates buffers (zeroed, filled from
// host data, or copied from another buffer in stream order), records compute passes over buffer
// ids, frees buffers, and names the buffers to read back. A request that reads nothing and asks for
// no reply is only recorded: the GPU thread submits when a later request reads (batched submission).
// Shader sources travel once; later requests name them by id.

export type HostData = Float32Array | Int32Array | Uint32Array;

export interface CreateSpec {
  id: number;
  words: number;
  data?: HostData;
  /** Copy this buffer's contents (recorded in order with the passes, so it sees earlier passes). */
  copyOf?: number;
}

export interface PassSpec {
  shader: number;
  /** Buffer ids bound to @binding(0..) in order; the params follow them. */
  bindings: readonly number[];
  /** The uniform block, as raw 32-bit words (f32 fields are written through a Float32Array view). */
  params: Uint32Array;
  /** Workgroups along x, y, z. */
  groups: readonly [number, number, number];
}

export interface GpuRequest {
  shaders: { id: number; code: string }[];
  create: CreateSpec[];
  passes: PassSpec[];
  /** Buffers to destroy once the work recorded so far is submitted. */
  free: number[];
  read: number[];
  /** Submit and wait even when nothing is read (the unbatched mode). */
  reply: boolean;
  /** After this request: free every buffer and destroy the device (the backend is closing). */
  close?: boolean;
}

export type GpuReply = { ok: true; results: ArrayBuffer[] } | { ok: false; error: string };

/** What the GPU thread is told at start. */
export interface GpuInit {
  /** A test seam: pretend the package or the adapter is missing. */
  simulate?: "no-package" | "no-adapter";
  /** Open adapter gpuMap[worker mod length] of those Dawn lists (gpu-map.ts); default: Dawn's choice. */
  gpuMap?: number[];
  worker?: number;
}

/** The GPU thread's first message: the adapter it opened, or why none could be opened. */
export type GpuReady =
  | { ok: true; adapter: string; maxInvocations: number; maxGroupsPerDim: number }
  | { ok: false; error: string };
