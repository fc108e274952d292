// The part of the WebGPU API the GPU thread uses, typed here because the `webgpu` package is an
// optional dependency: the build must not need it (or @webgpu/types) to be installed.

export interface GpuBuffer {
  readonly size: number;
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}

export interface GpuBindGroupLayout { readonly label: string }
export interface GpuComputePipeline { getBindGroupLayout(index: number): GpuBindGroupLayout }
export interface GpuBindGroup { readonly label: string }
export interface GpuCommandBuffer { readonly label: string }

export interface GpuPassEncoder {
  setPipeline(p: GpuComputePipeline): void;
  setBindGroup(index: number, g: GpuBindGroup): void;
  dispatchWorkgroups(x: number, y: number, z: number): void;
  end(): void;
}

export interface GpuEncoder {
  beginComputePass(): GpuPassEncoder;
  copyBufferToBuffer(src: GpuBuffer, srcOffset: number, dst: GpuBuffer, dstOffset: number, size: number): void;
  finish(): GpuCommandBuffer;
}

export interface GpuDevice {
  readonly limits: { maxComputeInvocationsPerWorkgroup: number; maxComputeWorkgroupsPerDimension: number };
  readonly queue: {
    writeBuffer(b: GpuBuffer, offset: number, data: ArrayBufferView): void;
    submit(cmds: GpuCommandBuffer[]): void;
    onSubmittedWorkDone(): Promise<void>;
  };
  createBuffer(d: { size: number; usage: number; mappedAtCreation?: boolean }): GpuBuffer;
  createShaderModule(d: { code: string }): unknown;
  createComputePipeline(d: { layout: "auto"; compute: { module: unknown; entryPoint: string } }): GpuComputePipeline;
  createBindGroup(d: { layout: GpuBindGroupLayout; entries: { binding: number; resource: { buffer: GpuBuffer } }[] }): GpuBindGroup;
  createCommandEncoder(): GpuEncoder;
  pushErrorScope(filter: "validation" | "out-of-memory" | "internal"): void;
  popErrorScope(): Promise<{ message: string } | null>;
  readonly lost: Promise<{ message: string }>;
  destroy(): void;
}

export interface GpuAdapter {
  readonly info: { vendor: string; architecture: string; device: string; description: string };
  requestDevice(): Promise<GpuDevice>;
}

export interface GpuInstance {
  requestAdapter(o?: { featureLevel?: "core" | "compatibility" }): Promise<GpuAdapter | null>;
}

/** The `webgpu` package's exports. */
export interface WebGpuModule {
  create(flags: string[]): GpuInstance;
}

// GPUBufferUsage and GPUMapMode bits (constants of the WebGPU specification).
export const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
export const MAP_READ = 0x1;
