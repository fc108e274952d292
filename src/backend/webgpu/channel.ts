// The compute thread's side of the GPU thread: a synchronous call. The request goes out on a
// MessagePort; this thread sleeps in Atomics.wait until the GPU thread raises the shared flag, then
// takes the reply with receiveMessageOnPort (no event loop turn is needed).
import { isMainThread, MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "node:worker_threads";
import type { GpuInit, GpuReady, GpuReply, GpuRequest } from "./protocol.js";

/** How long a blocked call waits for the GPU thread before giving up with an error (not a hang). */
const REPLY_TIMEOUT_MS = 300_000;

export class GpuChannel {
  private readonly signal = new Int32Array(new SharedArrayBuffer(4));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  readonly ready: GpuReady;

  constructor(init: GpuInit) {
    // Mesa's EGL needs a platform without a display server; the variable must be in the process
    // environment before Dawn loads, and only the main thread's process.env reaches it.
    if (isMainThread && !process.env.EGL_PLATFORM && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
      process.env.EGL_PLATFORM = "surfaceless";
    }
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(new URL("./device-thread.js", import.meta.url), {
      workerData: { port: port2, flag: this.signal.buffer, init }, transferList: [port2] });
    // The GPU thread must never keep the process alive on its own.
    this.worker.unref();
    this.port.unref();
    this.ready = this.await<GpuReady>("opening the WebGPU adapter");
  }

  /** Sends a request that needs no reply (recorded work) without waiting. */
  post(req: GpuRequest, what: string): void {
    this.checkQuiet(what);
    this.port.postMessage(req);
  }

  call(req: GpuRequest, what: string): ArrayBuffer[] {
    this.checkQuiet(what);
    Atomics.store(this.signal, 0, 0);
    this.port.postMessage(req);
    const r = this.await<GpuReply>(what);
    if (!r.ok) throw new Error(`webgpu ${what}: ${r.error}`);
    return r.results;
  }

  /**
   * A message that arrived between calls is the GPU thread failing on its own: work recorded
   * earlier failed, or the device was lost.
   */
  private checkQuiet(what: string): void {
    const stale = receiveMessageOnPort(this.port);
    if (stale) {
      const m = stale.message as GpuReply;
      throw new Error(`webgpu ${what}: ${m.ok ? "a reply nobody asked for" : m.error}`);
    }
  }

  close(): void {
    void this.worker.terminate();
  }

  private await<T>(what: string): T {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    // The raised flag says the reply was posted, but the message can reach this port a moment
    // later, so poll the port every millisecond once the flag is up.
    for (;;) {
      const m = receiveMessageOnPort(this.port);
      if (m) return m.message as T;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`webgpu ${what}: the GPU thread did not answer within ${REPLY_TIMEOUT_MS / 1000} s`);
      const raised = Atomics.load(this.signal, 0);
      Atomics.wait(this.signal, 0, raised, raised === 0 ? left : 1);
    }
  }
}
