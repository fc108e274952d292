// A test seam: tests set `simulate` to see the errors of a machine without the `webgpu` package or
// without an adapter. Production code never sets it.
import type { GpuInit } from "./protocol.js";

export const webgpuSeam: { simulate?: GpuInit["simulate"] } = {};
