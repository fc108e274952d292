// The messages between a compute thread and its GPU thread (device-thread.ts). A request is one
// command buffer: buffers to create (with their initial contents), compute passes over them, and the
// buffers to read back. Shader sources travel once; later requests name them by id.

/** A storage buffer of `words` 32-bit words, filled from `data` when given (else zeros). */
export interface BufferSpec {
  words: number;
  data?: Float32Array | Int32Array | Uint32Array;
}

export interface PassSpec {
  shader: number;
  /** Indices into the request's buffers, bound to @binding(0..) in order; the params follow them. */
  bindings: readonly number[];
  /** The uniform block, as raw 32-bit words (f32 fields are written through a Float32Array view). */
  params: Uint32Array;
  /** Workgroups along x, y, z. */
  groups: readonly [number, number, number];
}

export interface GpuRequest {
  shaders: { id: number; code: string }[];
  buffers: BufferSpec[];
  passes: PassSpec[];
  read: readonly number[];
}

export type GpuReply = { ok: true; results: ArrayBuffer[] } | { ok: false; error: string };

/** What the GPU thread is told at start. */
export interface GpuInit {
  /** A test seam: pretend the package or the adapter is missing. */
  simulate?: "no-package" | "no-adapter";
}

/** The GPU thread's first message: the adapter it opened, or why none could be opened. */
export type GpuReady =
  | { ok: true; adapter: string; maxInvocations: number; maxGroupsPerDim: number }
  | { ok: false; error: string };
