// Per-kernel timing for `bench engine --profile`: a wrapper backend whose every kernel forwards to the
// real one under a timer keyed by kernel (and, for unary/binary, by op: "binary:add"), installed as
// the current backend, so the profile shows where a training step's time goes and how much is
// outside the kernels (autograd bookkeeping, allocation).
import type { Backend } from "../backend/backend.js";
import { getBackend, useBackend } from "../backend/index.js";

export interface KernelStat {
  kernel: string;
  calls: number;
  totalMs: number;
}

export interface KernelProfiler {
  /** The timing wrapper (already installed as the current backend). */
  backend: Backend;
  /** Clears the accumulated timings (e.g. after warm-up). */
  reset(): void;
  /** Timings sorted by total time, largest first. */
  stats(): KernelStat[];
  /** Reinstalls the backend that was current before. */
  restore(): void;
}

type AnyFn = (...args: unknown[]) => unknown;

/** Wraps `inner` (default: the current backend) and installs the wrapper until restore(). */
export function profileKernels(inner: Backend = getBackend()): KernelProfiler {
  const source = inner as unknown as Record<string, unknown>;
  const acc = new Map<string, KernelStat>();
  const wrapper: Record<string, unknown> = { name: inner.name };
  const keys = new Set<string>();
  // Kernels may live on the object or on its prototype (a class instance).
  for (let o: object | null = inner; o && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const k of Object.getOwnPropertyNames(o)) if (k !== "constructor" && typeof source[k] === "function") keys.add(k);
  }
  for (const k of keys) {
    const orig = source[k] as AnyFn;
    // unary/binary take the op name first; time each op separately.
    const byOp = k === "unary" || k === "binary" || k === "unaryBackward";
    wrapper[k] = (...args: unknown[]): unknown => {
      const name = byOp ? `${k}:${String(args[0])}` : k;
      const t0 = performance.now();
      try {
        return orig.apply(inner, args);
      } finally {
        const dt = performance.now() - t0;
        const s = acc.get(name);
        if (s) { s.calls++; s.totalMs += dt; } else acc.set(name, { kernel: name, calls: 1, totalMs: dt });
      }
    };
  }
  const backend = wrapper as unknown as Backend;
  const prev = useBackend(backend);
  return {
    backend,
    reset: () => acc.clear(),
    stats: () => [...acc.values()].map((s) => ({ ...s })).sort((a, b) => b.totalMs - a.totalMs),
    restore: () => { useBackend(prev); },
  };
}
