// The GPU thread: owns one WebGPU device and runs the compute thread's requests on it. WebGPU is
// asynchronous and the Backend interface is not, so the compute thread posts a request and blocks on
// a shared flag (channel.ts); this thread awaits the GPU, posts the reply, then raises the flag.
import { workerData, type MessagePort } from "node:worker_threads";
import { MAP_READ, USAGE, type GpuAdapter, type GpuBuffer, type GpuComputePipeline, type GpuDevice,
  type GpuInstance, type WebGpuModule } from "./gpu-types.js";
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

/** A real GPU through Dawn's default backend first, then Mesa's OpenGL ES in compatibility mode. */
async function openAdapter(mod: WebGpuModule): Promise<{ adapter: GpuAdapter; label: string } | null> {
  const tries: [string[], "core" | "compatibility", string][] = [
    [[], "core", "default"], [["backend=opengles"], "compatibility", "opengles"]];
  for (const [flags, featureLevel, label] of tries) {
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

function storage(device: GpuDevice, words: number): GpuBuffer {
  // Zero-length tensors still need a bindable buffer.
  return device.createBuffer({ size: Math.max(4, words * 4), usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST });
}

async function run(device: GpuDevice, req: GpuRequest): Promise<ArrayBuffer[]> {
  for (const s of req.shaders) {
    // Each source compiles once per thread, so the synchronous form costs little and keeps order simple.
    pipelines.set(s.id, device.createComputePipeline({
      layout: "auto", compute: { module: device.createShaderModule({ code: s.code }), entryPoint: "main" } }));
  }
  const owned: GpuBuffer[] = [];
  const buffers = req.buffers.map((b) => {
    const buf = storage(device, b.words);
    owned.push(buf);
    if (b.data && b.data.length > 0) device.queue.writeBuffer(buf, 0, b.data);
    return buf;
  });
  const enc = device.createCommandEncoder();
  for (const p of req.passes) {
    const pipeline = pipelines.get(p.shader);
    if (!pipeline) throw new Error(`shader ${p.shader} was never sent`);
    const uniform = device.createBuffer({ size: Math.max(16, Math.ceil(p.params.length / 4) * 16),
      usage: USAGE.UNIFORM | USAGE.COPY_DST });
    owned.push(uniform);
    device.queue.writeBuffer(uniform, 0, p.params);
    const entries = [...p.bindings.map((i) => buffers[i]), uniform].map((buffer, binding) => ({ binding, resource: { buffer } }));
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
    pass.dispatchWorkgroups(...p.groups);
    pass.end();
  }
  const staging = req.read.map((i) => {
    const size = Math.max(4, req.buffers[i].words * 4);
    const s = device.createBuffer({ size, usage: USAGE.MAP_READ | USAGE.COPY_DST });
    owned.push(s);
    enc.copyBufferToBuffer(buffers[i], 0, s, 0, size);
    return s;
  });
  device.queue.submit([enc.finish()]);
  const results: ArrayBuffer[] = [];
  for (const s of staging) {
    await s.mapAsync(MAP_READ);
    results.push(s.getMappedRange().slice(0));
    s.unmap();
  }
  for (const b of owned) b.destroy();
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
  void device.lost.then((info) => reply({ ok: false, error: `GPU device lost: ${info.message}` }));
  // Requests run one at a time: the compute thread blocks until each reply.
  port.on("message", (req: GpuRequest) => {
    device.pushErrorScope("validation");
    const done = run(device, req).then((results) => ({ results, error: null }), (e: Error) => ({ results: [], error: e.message }));
    void done.then(async ({ results, error }) => {
      const scoped = await device.popErrorScope();
      const message = scoped?.message ?? error;
      reply(message !== null ? { ok: false, error: message } : { ok: true, results });
    });
  });
}

void main();
