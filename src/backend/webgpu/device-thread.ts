// The GPU thread: owns one WebGPU device and runs the compute thread's requests on it. WebGPU is
// asynchronous and the Backend interface is not, so the compute thread posts a request and blocks on
// a shared flag (channel.ts); this thread awaits the GPU, posts the reply, then raises the flag.
import { workerData, type MessagePort } from "node:worker_threads";
import { MAP_READ, USAGE, type GpuAdapter, type GpuBuffer, type GpuComputePipeline, type GpuDevice, type GpuEncoder,
  type GpuInstance, type WebGpuModule } from "./gpu-types.js";
import { checkGpuMap, gpuOfWorker, parseAdapterList } from "./gpu-map.js";
import { NO_ADAPTER, NO_PACKAGE } from "./messages.js";
import type { GpuInit, GpuReady, GpuReply, GpuRequest } from "./protocol.js";


const { port, flag, init } = workerData as { port: MessagePort; flag: SharedArrayBuffer; init: GpuInit };
const signal = new Int32Array(flag);

function reply(message: GpuReady | GpuReply): void {
  port.postMessage(message);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
}

// Whatever goes wrong on this thread must reach the blocked compute thread as an error, not a hang.
process.on("uncaughtException", (e) => reply({ ok: false, error: `GPU thread: ${e.message}` }));
process.on("unhandledRejection", (e) => reply({ ok: false, error: `GPU thread: ${String(e)}` }));

const liveInstances: GpuInstance[] = [];

/** The names of the adapters Dawn offers on one backend, in its order (asked for a name none has, it lists them). */
async function adapterNames(mod: WebGpuModule, backend: string, featureLevel: "core" | "compatibility"): Promise<string[]> {
  const instance = mod.create([`backend=${backend}`, "adapter=\u0001pipewright-lists-adapters"]);
  liveInstances.push(instance); // kept like every instance: collecting one has aborted Dawn
  try {
    await instance.requestAdapter({ featureLevel });
    return [];
  } catch (e) {
    return parseAdapterList((e as Error).message);
  }
}

/** Dawn flags selecting the adapter this worker's entry of the GPU map names, or null if the backend has none. */
async function mappedFlags(mod: WebGpuModule, backend: string, featureLevel: "core" | "compatibility"): Promise<string[] | null> {
  const names = await adapterNames(mod, backend, featureLevel);
  if (!names.length) return null;
  checkGpuMap(init.gpuMap!, names);
  return [`backend=${backend}`, `adapter=${names[gpuOfWorker(init.gpuMap!, init.worker ?? 0)]}`];
}

/** A real GPU through Dawn's default backend first, then Mesa's OpenGL ES in compatibility mode. */
async function openAdapter(mod: WebGpuModule): Promise<{ adapter: GpuAdapter; label: string } | null> {
  // With a GPU map the backend must be named (Dawn lists adapters per backend): Vulkan stands for the default.
  const tries: [string, "core" | "compatibility", string][] = [
    ["vulkan", "core", "default"], ["opengles", "compatibility", "opengles"]];
  for (const [backend, featureLevel, label] of tries) {
    const flags = !init.gpuMap ? (label === "default" ? [] : [`backend=${backend}`]) : await mappedFlags(mod, backend, featureLevel);
    if (!flags) continue;
    const instance = mod.create(flags);
    const adapter = await instance.requestAdapter({ featureLevel });
    if (adapter) {
      // Dawn's instance must outlive its device: collecting it aborts the process later.
      liveInstances.push(instance);
      return { adapter, label };
    }
  }
  return null;
}

async function openDevice(): Promise<{ device: GpuDevice; ready: GpuReady }> {
  if (init.simulate === "no-package") throw new Error(NO_PACKAGE);
  let mod: WebGpuModule;
  try {
    const name = "webgpu"; // a variable, so the build does not need the optional package
    mod = (await import(name)) as WebGpuModule;
  } catch {
    throw new Error(NO_PACKAGE);
  }
  const found = init.simulate === "no-adapter" ? null : await openAdapter(mod);
  if (!found) throw new Error(NO_ADAPTER);
  const device = await found.adapter.requestDevice();
  const i = found.adapter.info;
  const name = [i.vendor, i.architecture, i.device, i.description].filter((s) => s).join(" ") || "unnamed";
  return {
    device,
    ready: { ok: true, adapter: `${name} (${found.label})`, maxInvocations: device.limits.maxComputeInvocationsPerWorkgroup,
      maxGroupsPerDim: device.limits.maxComputeWorkgroupsPerDimension },
  };
}

const pipelines = new Map<number, GpuComputePipeline>();
const buffers = new Map<number, GpuBuffer>();
/** Buffers freed or used once (uniforms, staging) since the last submit: destroyed after it. */
let retired: GpuBuffer[] = [];
let encoder: GpuEncoder | null = null;
let recorded = 0;
/** Set once the device is destroyed on purpose: its "lost" promise is then no error. */
let closing = false;
/**
 * Passes per command buffer before a submit without waiting: bounds the length of one command
 * buffer. A fixed count, so where submits fall never depends on timing.
 */
const MAX_PASSES_PER_SUBMIT = 256;

function storage(device: GpuDevice, words: number): GpuBuffer {
  // Zero-length tensors still need a bindable buffer.
  return device.createBuffer({ size: Math.max(4, words * 4), usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST });
}

function bufferOf(id: number): GpuBuffer {
  const b = buffers.get(id);
  if (!b) throw new Error(`buffer ${id} does not exist (freed or never created)`);
  return b;
}

function submit(device: GpuDevice): void {
  if (encoder) device.queue.submit([encoder.finish()]);
  encoder = null;
  recorded = 0;
  // Dawn keeps a destroyed buffer's memory until the submitted work that uses it is done.
  for (const b of retired) b.destroy();
  retired = [];
}

function record(device: GpuDevice, req: GpuRequest): void {
  for (const s of req.shaders) {
    // Each source compiles once per thread, so the synchronous form costs little and keeps order simple.
    pipelines.set(s.id, device.createComputePipeline({
      layout: "auto", compute: { module: device.createShaderModule({ code: s.code }), entryPoint: "main" } }));
  }
  const enc = (encoder ??= device.createCommandEncoder());
  for (const c of req.create) {
    const b = storage(device, c.words);
    buffers.set(c.id, b);
    // A new buffer is not used by any recorded pass yet, so writing it ahead of them is safe.
    if (c.data && c.data.length > 0) device.queue.writeBuffer(b, 0, c.data);
    if (c.copyOf !== undefined) enc.copyBufferToBuffer(bufferOf(c.copyOf), 0, b, 0, Math.max(4, c.words * 4));
  }
  for (const p of req.passes) {
    const pipeline = pipelines.get(p.shader);
    if (!pipeline) throw new Error(`shader ${p.shader} was never sent`);
    const uniform = device.createBuffer({ size: Math.max(16, Math.ceil(p.params.length / 4) * 16),
      usage: USAGE.UNIFORM | USAGE.COPY_DST });
    retired.push(uniform);
    device.queue.writeBuffer(uniform, 0, p.params);
    const entries = [...p.bindings.map(bufferOf), uniform].map((buffer, binding) => ({ binding, resource: { buffer } }));
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
    pass.dispatchWorkgroups(...p.groups);
    pass.end();
    recorded++;
  }
}

async function run(device: GpuDevice, req: GpuRequest): Promise<ArrayBuffer[]> {
  record(device, req);
  const staging = req.read.map((id) => {
    const src = bufferOf(id);
    const s = device.createBuffer({ size: src.size, usage: USAGE.MAP_READ | USAGE.COPY_DST });
    encoder!.copyBufferToBuffer(src, 0, s, 0, src.size);
    return s;
  });
  for (const id of req.free) {
    retired.push(bufferOf(id));
    buffers.delete(id);
  }
  if (staging.length === 0 && !req.reply) {
    if (recorded >= MAX_PASSES_PER_SUBMIT) submit(device);
    return [];
  }
  submit(device);
  if (staging.length === 0) await device.queue.onSubmittedWorkDone();
  if (req.close) {
    for (const b of buffers.values()) b.destroy();
    buffers.clear();
    closing = true;
    device.destroy();
  }
  const results: ArrayBuffer[] = [];
  for (const s of staging) {
    await s.mapAsync(MAP_READ);
    results.push(s.getMappedRange().slice(0));
    s.destroy();
  }
  return results;
}

async function main(): Promise<void> {
  let device: GpuDevice;
  try {
    const opened = await openDevice();
    device = opened.device;
    reply(opened.ready);
  } catch (e) {
    reply({ ok: false, error: (e as Error).message });
    return;
  }
  void device.lost.then((info) => { if (!closing) reply({ ok: false, error: `GPU device lost: ${info.message}` }); });
  // Requests run one at a time, in order: a recorded request's error must reach the compute thread
  // before the reply to a later read. Recorded-only requests answer only when they fail.
  let queue = Promise.resolve();
  port.on("message", (req: GpuRequest) => {
    queue = queue.then(async () => {
      device.pushErrorScope("validation");
      const done = await run(device, req).then((results) => ({ results, error: null }),
        (e: Error) => ({ results: [], error: e.message }));
      const scoped = await device.popErrorScope();
      const message = scoped?.message ?? done.error;
      if (message !== null) reply({ ok: false, error: message });
      else if (req.read.length > 0 || req.reply) reply({ ok: true, results: done.results });
    });
  });
}

void main();
