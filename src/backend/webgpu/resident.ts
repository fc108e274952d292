// Tensors that live on the device. The webgpu backend installs a factory (src/tensor/host-arrays.ts)
// whose arrays are Proxies over a plain Float32Array: a kernel that writes one leaves the result in
// its device buffer and marks the host copy stale; the first host access (an element, a method, the
// buffer) reads it back. Host writes drop the device copy, so the next kernel uploads the new values.
// Kernels never go through the proxy: they find the slot and use the device buffer directly.
import { registerBacking, type HostArrays } from "../../tensor/host-arrays.js";

/**
 * The device side of one array: its buffer id (null: none yet), whether the host copy is behind, and
 * whether the array still holds the zeros it was made with (then a kernel needs no upload of them).
 */
export interface Slot {
  readonly memory: Memory;
  id: number | null;
  stale: boolean;
  zero: boolean;
}

/** The host memory behind a device array: values (Float32) or indices a kernel wrote (Int32). */
export type Memory = Float32Array | Int32Array;

/** What the slots need from the GPU: read a buffer into host memory, and free one. */
export interface SlotOwner {
  readBack(id: number, into: Memory): void;
  retire(id: number): void;
}

// Properties that neither read nor write the values.
const META = new Set<PropertyKey>(["length", "byteLength", "byteOffset", "BYTES_PER_ELEMENT", "constructor",
  Symbol.toStringTag]);
// Methods that only read the values (the result, if an array, is new memory).
const READERS = new Set<PropertyKey>(["slice", "at", "indexOf", "lastIndexOf", "includes", "join", "toString",
  "toLocaleString", "every", "some", "find", "findIndex", "findLast", "findLastIndex", "forEach", "map", "filter",
  "reduce", "reduceRight", "entries", "keys", "values", Symbol.iterator]);

export class ResidentArrays implements HostArrays {
  private readonly slots = new WeakMap<Memory, Slot>();
  // Frees a collected array's device buffer (sent with the next request; see docs/webgpu.md).
  private readonly registry: FinalizationRegistry<Slot>;

  constructor(private readonly owner: SlotOwner) {
    this.registry = new FinalizationRegistry((slot) => this.drop(slot));
  }

  alloc(n: number): Float32Array {
    const memory = new Float32Array(n);
    const view = this.make(memory);
    registerBacking(view, memory, () => { const slot = this.slots.get(view)!; this.toHost(slot); this.drop(slot); });
    return view;
  }

  allocInt32(n: number): Int32Array {
    return this.make(new Int32Array(n));
  }

  private make<T extends Memory>(memory: T): T {
    const slot: Slot = { memory, id: null, stale: false, zero: true };
    const view = new Proxy(memory, this.handler(slot)) as T;
    this.slots.set(view, slot);
    this.registry.register(view, slot);
    return view;
  }

  /** The slot of an array this factory made, or undefined for a plain array. */
  slotOf(a: Float32Array | Int32Array | Uint32Array): Slot | undefined {
    return a instanceof Uint32Array ? undefined : this.slots.get(a);
  }

  /** Brings the device's values to the host copy if it is behind. */
  toHost(slot: Slot): void {
    if (slot.stale && slot.id !== null) this.owner.readBack(slot.id, slot.memory);
    slot.stale = false;
  }

  /** Forgets the device copy (the host copy must be current, and the host may write it). */
  drop(slot: Slot): void {
    slot.zero = false;
    if (slot.id !== null) this.owner.retire(slot.id);
    slot.id = null;
  }

  private handler(slot: Slot): ProxyHandler<Memory> {
    const read = (): void => { if (slot.stale) this.toHost(slot); };
    const write = (): void => { read(); this.drop(slot); };
    return {
      get: (t, key, view) => {
        if (META.has(key)) return Reflect.get(t, key);
        read();
        const v: unknown = Reflect.get(t, key);
        if (typeof v === "function") {
          if (!READERS.has(key)) this.drop(slot); // set, fill, subarray, sort...: the host may write
          // Methods that return their array (fill, sort, reverse...) return the view, not the memory
          // behind it: `alloc(n).fill(1)` must stay device-backed.
          return (...args: unknown[]) => {
            const r: unknown = (v as (...a: unknown[]) => unknown).apply(t, args);
            return r === t ? view : r;
          };
        }
        if (key === "buffer") this.drop(slot); // anything may be written through the buffer
        return v;
      },
      set: (t, key, value) => { write(); return Reflect.set(t, key, value); },
      has: (t, key) => { read(); return Reflect.has(t, key); },
      ownKeys: (t) => { read(); return Reflect.ownKeys(t); },
      getOwnPropertyDescriptor: (t, key) => { read(); return Reflect.getOwnPropertyDescriptor(t, key); },
      defineProperty: (t, key, d) => { write(); return Reflect.defineProperty(t, key, d); },
    };
  }
}
