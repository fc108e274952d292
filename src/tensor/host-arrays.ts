// Where tensor memory comes from. By default a tensor's data is a plain Float32Array. A backend that
// keeps tensors on a device (webgpu) installs a factory whose arrays are views that copy the device's
// values back on the first host access; this module lets the layers above hand such an array to code
// that needs real memory (a postMessage, a native call) without knowing about devices.

/** Arrays a device backend hands out for new tensors and gradients. */
export interface HostArrays {
  /** A new array of n elements (zeroed). */
  alloc(n: number): Float32Array;
  /** The same for indices a kernel writes and a later kernel reads (max pooling's argmax). */
  allocInt32?(n: number): Int32Array;
}

let factory: HostArrays | null = null;
/** For each device-backed array: the real memory behind it and how to bring the device's values there. */
const backing = new WeakMap<Float32Array, { memory: Float32Array; toHost(): void }>();

/** Installs (or, with null, removes) the factory used by allocFloat32 and the Tensor constructors. */
export function setHostArrays(f: HostArrays | null): void {
  factory = f;
}

/** A zeroed array of n elements from the current factory, or a plain Float32Array without one. */
export function allocFloat32(n: number): Float32Array {
  return factory ? factory.alloc(n) : new Float32Array(n);
}

/** A zeroed Int32Array of n elements from the current factory, or a plain one. */
export function allocInt32(n: number): Int32Array {
  return factory?.allocInt32?.(n) ?? new Int32Array(n);
}

/** Whether arrays come from a device backend's factory (callers then skip host-only tricks). */
export function deviceArrays(): boolean {
  return factory !== null;
}

/** Whether any device-backed array was ever made (until then every array is plain). */
let anyBacked = false;

/** Called by a factory for each array it makes: `memory` is the plain array it stands for. */
export function registerBacking(view: Float32Array, memory: Float32Array, toHost: () => void): void {
  anyBacked = true;
  backing.set(view, { memory, toHost });
}

/** False while no device-backed array exists in this thread: callers may then skip looking for them. */
export function mayHoldDeviceArrays(): boolean {
  return anyBacked;
}

/**
 * The plain array holding a's values, up to date, for code that needs real memory (transfer lists,
 * native calls). The host owns it from now on: the device copy is dropped. Plain arrays pass through.
 */
export function hostMemory(a: Float32Array): Float32Array {
  const b = backing.get(a);
  if (!b) return a;
  b.toHost();
  return b.memory;
}

/** Whether a and b share memory, without bringing device values to the host. */
export function sameMemory(a: Float32Array, b: Float32Array): boolean {
  return (backing.get(a)?.memory ?? a).buffer === (backing.get(b)?.memory ?? b).buffer;
}
